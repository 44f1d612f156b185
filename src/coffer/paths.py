"""Where Coffer keeps its files when nobody says otherwise."""

from __future__ import annotations

import os
from pathlib import Path


def find_checkout(start: Path | None = None) -> Path | None:
    """The coffer source checkout containing ``start`` (default: cwd), if any."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "src" / "coffer").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    return None


def default_data_dir() -> Path:
    """``$COFFER_DATA_DIR``, else ``<checkout>/var``, else ``~/.local/share/coffer``."""
    env = os.environ.get("COFFER_DATA_DIR")
    if env:
        return Path(env)
    checkout = find_checkout()
    if checkout is not None:
        return checkout / "var"
    return Path.home() / ".local" / "share" / "coffer"
