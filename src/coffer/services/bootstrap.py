"""First-start and every-start preparation of a deployment's data directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import select

from coffer.db.models import Project, Token
from coffer.security import hash_token
from coffer.services import catalog, identity, projects
from coffer.services.runtime import Runtime

ADMIN_PROJECT = "admin"


def seed(rt: Runtime) -> None:
    with rt.sessions.begin() as s:
        catalog.seed(s)


def ensure_admin_credentials(rt: Runtime) -> Path:
    """Make sure ``credentials.json`` holds a working admin token for this endpoint, and
    the admin's password login (``username``, ``password``, ``project_name``).

    The token and the password are reused across restarts; the endpoint is rewritten if
    host/port changed. Other keys in the file are kept. The password is never logged.
    """
    path = rt.settings.data_dir / "credentials.json"
    existing = _read(path)
    with rt.sessions() as s:
        admin = s.scalar(select(Project).where(Project.name == ADMIN_PROJECT))
        token_ok = (
            admin is not None
            and existing.get("project_id") == admin.id
            and s.get(Token, hash_token(existing.get("token", ""))) is not None
        )
    if admin is None:
        creds = projects.create_project(rt, ADMIN_PROJECT, is_admin=True)
    elif token_ok:
        creds = projects.Credentials(
            projects.endpoint_for(rt, admin.id), admin.id, existing["token"]
        )
    else:
        creds = projects.create_token(rt, admin.id)
    content = {**existing, **creds.as_dict()}
    content.update(identity.ensure_admin_login(rt, creds.project_id, existing))
    _write_private(path, json.dumps(content, indent=2) + "\n")
    return path


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
