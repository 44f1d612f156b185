"""Where Coffer keeps its files when nobody says otherwise (shared by server, agent, CLI)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

DATA_DIR_ENV = "COFFER_DATA_DIR"


def find_checkout(start: Path | None = None) -> Path | None:
    """The coffer source checkout holding ``start`` (default: the working directory).

    A checkout is a directory with ``src/coffer`` and a ``pyproject.toml`` whose
    ``[project] name`` is ``coffer``.
    """
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if _is_coffer_checkout(candidate):
            return candidate
    return None


def _is_coffer_checkout(directory: Path) -> bool:
    pyproject = directory / "pyproject.toml"
    if not (directory / "src" / "coffer").is_dir() or not pyproject.is_file():
        return False
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return isinstance(project, dict) and project.get("name") == "coffer"


def default_data_dir(start: Path | None = None) -> Path:
    """``<checkout>/var`` inside a coffer source checkout, else ``~/.local/share/coffer``."""
    checkout = find_checkout(start)
    if checkout is not None:
        return checkout / "var"
    return Path.home() / ".local" / "share" / "coffer"


def configured_data_dir() -> Path:
    """``$COFFER_DATA_DIR`` if set, else ``default_data_dir()``."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else default_data_dir()
