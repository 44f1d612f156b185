"""Projects and their tokens (a Coffer extension; Keystone's job in OpenStack)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from coffer.clock import utcnow
from coffer.db.models import Project, Token
from coffer.errors import BadRequest, NotFound
from coffer.security import hash_token, new_token
from coffer.services.runtime import Runtime

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Credentials:
    endpoint: str
    project_id: str
    token: str

    def as_dict(self) -> dict[str, str]:
        return {"endpoint": self.endpoint, "project_id": self.project_id, "token": self.token}


def endpoint_for(rt: Runtime, project_id: str) -> str:
    return f"{rt.settings.base_url}/v1.0/{project_id}"


def create_project(rt: Runtime, name: str, *, is_admin: bool = False) -> Credentials:
    if not _NAME.match(name):
        raise BadRequest(
            "project name must be 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    with rt.sessions.begin() as s:
        if s.scalar(select(Project).where(Project.name == name)) is not None:
            raise BadRequest(f"project {name!r} already exists")
        project = Project(id=uuid.uuid4().hex, name=name, created=utcnow())
        s.add(project)
        s.flush()
        token = _add_token(s, project.id, is_admin=is_admin)
    return Credentials(endpoint_for(rt, project.id), project.id, token)


def create_token(rt: Runtime, project: str) -> Credentials:
    with rt.sessions.begin() as s:
        row = s.scalar(select(Project).where(or_(Project.id == project, Project.name == project)))
        if row is None:
            raise NotFound(f"project {project!r} not found")
        admin = s.scalar(select(Token).where(Token.project_id == row.id, Token.is_admin))
        token = _add_token(s, row.id, is_admin=admin is not None)
        return Credentials(endpoint_for(rt, row.id), row.id, token)


def list_projects(rt: Runtime) -> list[dict[str, str]]:
    with rt.sessions() as s:
        rows = s.scalars(select(Project).order_by(Project.name)).all()
        return [{"id": p.id, "name": p.name} for p in rows]


def project_exists(rt: Runtime, project_id: str) -> bool:
    with rt.sessions() as s:
        return s.get(Project, project_id) is not None


def _add_token(s: Session, project_id: str, *, is_admin: bool) -> str:
    token = new_token()
    s.add(
        Token(
            token_hash=hash_token(token),
            project_id=project_id,
            is_admin=is_admin,
            created=utcnow(),
        )
    )
    return token
