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
from collections.abc import Mapping
from pathlib import Path

from coffer.client import Credentials
from coffer.contracts.paths import default_data_dir, find_checkout

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
