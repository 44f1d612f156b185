"""Where the CLI finds its data directory and the credentials to talk to a server.

Credentials come from, in this order:

1. ``COFFER_ENDPOINT`` and ``COFFER_TOKEN`` in the environment (both, or neither);
2. ``<data-dir>/credentials.json`` (keys ``endpoint``, ``project_id``, ``token``), where
   the data directory is ``--data-dir``, else ``COFFER_DATA_DIR``, else
   ``default_data_dir()``.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from coffer.client import Credentials

__all__ = [
    "CREDENTIALS_FILE",
    "DATA_DIR_ENV",
    "ENDPOINT_ENV",
    "TOKEN_ENV",
    "CredentialsError",
    "default_data_dir",
    "discover_credentials",
    "find_checkout",
    "read_credentials_file",
    "resolve_data_dir",
]

ENDPOINT_ENV = "COFFER_ENDPOINT"
TOKEN_ENV = "COFFER_TOKEN"
DATA_DIR_ENV = "COFFER_DATA_DIR"
CREDENTIALS_FILE = "credentials.json"


class CredentialsError(Exception):
    """No usable credentials; the message says where they were looked for."""


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


def resolve_data_dir(option: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """``--data-dir`` if given, else ``$COFFER_DATA_DIR``, else ``default_data_dir()``."""
    env = os.environ if environ is None else environ
    if option is not None:
        return option
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV])
    return default_data_dir()


def discover_credentials(
    data_dir_option: Path | None, environ: Mapping[str, str] | None = None
) -> Credentials:
    """The credentials to use, found in the order the module docstring gives."""
    env = os.environ if environ is None else environ
    endpoint, token = env.get(ENDPOINT_ENV), env.get(TOKEN_ENV)
    if endpoint and token:
        endpoint = endpoint.rstrip("/")
        return {"endpoint": endpoint, "project_id": endpoint.rsplit("/", 1)[-1], "token": token}
    if endpoint or token:
        present, missing = (ENDPOINT_ENV, TOKEN_ENV) if endpoint else (TOKEN_ENV, ENDPOINT_ENV)
        raise CredentialsError(f"{present} is set but {missing} is not; set both or neither")
    return read_credentials_file(resolve_data_dir(data_dir_option, env) / CREDENTIALS_FILE)


def read_credentials_file(path: Path) -> Credentials:
    """Read a ``credentials.json`` as ``coffer server`` or ``coffer project create`` write it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CredentialsError(
            f"no credentials: {path} does not exist; set {ENDPOINT_ENV} and {TOKEN_ENV}, "
            f"or point --data-dir or {DATA_DIR_ENV} at a Coffer data directory"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CredentialsError(f"cannot read credentials from {path}: {exc}") from None
    keys = ("endpoint", "project_id", "token")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in keys):
        raise CredentialsError(f"{path} must hold a JSON object with {', '.join(keys)}")
    return {"endpoint": data["endpoint"], "project_id": data["project_id"], "token": data["token"]}
