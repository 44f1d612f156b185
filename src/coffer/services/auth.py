"""Who is calling: API tokens (hashed at rest) resolve to a project and a role.

A token with an ``expires_at`` (a password login's) is refused from that moment on.
"""

from __future__ import annotations

from dataclasses import dataclass

from coffer.clock import utcnow
from coffer.db.models import Project, Token
from coffer.errors import Forbidden, Unauthorized
from coffer.security import hash_token
from coffer.services.runtime import Runtime


@dataclass(frozen=True)
class Principal:
    project_id: str
    project_name: str
    is_admin: bool

    def check_project(self, project_id: str) -> None:
        """The project in the URL must be the token's own, unless the caller is admin."""
        if project_id != self.project_id and not self.is_admin:
            raise Forbidden(f"User with tenant id {self.project_id} cannot access this resource")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this operation needs the admin role")


def authenticate(rt: Runtime, token: str | None) -> Principal:
    if not token:
        raise Unauthorized("missing X-Auth-Token header")
    with rt.sessions() as s:
        row = s.get(Token, hash_token(token))
        if row is None:
            raise Unauthorized("the token is not valid")
        if row.expires_at is not None and row.expires_at <= utcnow():
            raise Unauthorized("the token has expired")
        project = s.get(Project, row.project_id)
        if project is None:
            raise Unauthorized("the token's project no longer exists")
        return Principal(project.id, project.name, row.is_admin)
