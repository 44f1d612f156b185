"""Password logins (the Keystone v3 subset): users, the tokens they log in for, projects.

Contract:
- A user belongs to one project and may scope a login to that project only. A user of an
  admin project (one whose tokens carry the admin role) is an admin: its tokens have the
  admin role, which reaches every project's resources through the admin project's URLs
  (as Trove's admin does), so admin-role tokens never exist outside the admin project.
- A login issues an ordinary Coffer API token (only its SHA-256 is stored) that names its
  user and expires ``keystone_token_ttl_s`` after issue. ``services.auth`` refuses it once
  expired; expired tokens are purged at the next login.
- Passwords are stored as ``coffer.passwords`` hashes only. An unknown user and a wrong
  password give the same error after the same work.
- Only the Default domain exists (id ``default``): a user or project named in another
  domain is not found.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coffer.clock import utcnow
from coffer.contracts.identity import AuthRequest, DomainRef, PasswordUser, Scope
from coffer.db.models import Project, Token, User
from coffer.errors import BadRequest, Forbidden, NotFound, Unauthorized
from coffer.passwords import hash_password, verify_password
from coffer.security import hash_token, new_password, new_token
from coffer.services.auth import Principal
from coffer.services.runtime import Runtime

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"
#: the user the first start creates in the admin project
ADMIN_USER = "admin"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_LOGIN_FAILED = "The request you have made requires authentication: wrong user name or password."


@dataclass(frozen=True)
class TokenGrant:
    """What a login token says: who, for which project, with which role, until when."""

    user_id: str
    user_name: str
    project_id: str
    project_name: str
    is_admin: bool
    issued_at: datetime
    expires_at: datetime
    #: a stable id of the token that does not reveal it (Keystone's ``audit_ids``)
    audit_id: str


@dataclass(frozen=True)
class UserView:
    id: str
    name: str
    project_id: str
    project_name: str
    is_admin: bool

    def as_dict(self) -> dict[str, str | bool]:
        return {
            "id": self.id,
            "name": self.name,
            "project_id": self.project_id,
            "project_name": self.project_name,
            "is_admin": self.is_admin,
        }


@dataclass(frozen=True)
class ProjectView:
    id: str
    name: str


def login(rt: Runtime, request: AuthRequest) -> tuple[str, TokenGrant]:
    """Check a password login and issue its token: ``(token, grant)``.

    401 for a wrong password, an unknown user, a method other than password, or a project
    the user may not scope to; 400 when the password method has no ``password`` section.
    Nothing is written unless a token is issued.
    """
    identity = request.auth.identity
    if set(identity.methods) != {"password"}:
        raise Unauthorized(
            "Attempted to authenticate with an unsupported method: only 'password' is supported."
        )
    if identity.password is None:
        raise BadRequest("Expecting to find password in identity.")
    given = identity.password.user
    with rt.sessions() as s:
        user = _find_user(s, given)
        stored = user.password_hash if user is not None else None
    # the hash is computed outside any transaction (it takes a while on purpose)
    if not verify_password(given.password, stored) or user is None:
        raise Unauthorized(_LOGIN_FAILED)
    now = utcnow()
    token = new_token()
    token_hash = hash_token(token)
    with rt.sessions.begin() as s:
        project = _scope_project(s, user, request.auth.scope)
        s.execute(delete(Token).where(Token.expires_at.is_not(None), Token.expires_at <= now))
        row = Token(
            token_hash=token_hash,
            project_id=project.id,
            is_admin=user.is_admin,
            created=now,
            user_id=user.id,
            expires_at=now + timedelta(seconds=rt.settings.keystone_token_ttl_s),
        )
        s.add(row)
        return token, _grant(row, user, project)


def validate(rt: Runtime, who: Principal, caller_token: str, subject: str | None) -> TokenGrant:
    """What the login token ``subject`` says, as seen by ``who`` (holding ``caller_token``).

    A caller may look at its own token; an admin at any. 400 when ``subject`` is missing;
    404 when it is unknown, expired, revoked or not a login token; 403 for another caller's
    token.
    """
    with rt.sessions() as s:
        row, user, project = _subject(s, who, caller_token, subject)
        return _grant(row, user, project)


def revoke(rt: Runtime, who: Principal, caller_token: str, subject: str | None) -> None:
    """Revoke the login token ``subject`` at once (same rules as ``validate``)."""
    with rt.sessions.begin() as s:
        row, _, _ = _subject(s, who, caller_token, subject)
        s.delete(row)


def create_user(rt: Runtime, *, name: str, password: str, project: str) -> UserView:
    """A new user of ``project`` (name or id). 400 for a bad or taken name, 404 for an
    unknown project. A user of an admin project is an admin."""
    if not _NAME.match(name):
        raise BadRequest(
            "user name must be 1-64 letters, digits, '.', '_', '@' or '-', starting with a "
            "letter or digit"
        )
    password_hash = hash_password(password)
    try:
        with rt.sessions.begin() as s:
            row = s.scalar(
                select(Project).where(or_(Project.id == project, Project.name == project))
            )
            if row is None:
                raise NotFound(f"project {project!r} not found")
            if s.scalar(select(User.id).where(User.name == name)) is not None:
                raise BadRequest(f"user {name!r} already exists")
            user = User(
                id=uuid.uuid4().hex,
                name=name,
                password_hash=password_hash,
                project_id=row.id,
                is_admin=_is_admin_project(s, row.id),
                created=utcnow(),
            )
            s.add(user)
            s.flush()
            return _user_view(user, row)
    except IntegrityError:  # the same name added concurrently
        raise BadRequest(f"user {name!r} already exists") from None


def list_users(rt: Runtime) -> list[UserView]:
    with rt.sessions() as s:
        rows = s.execute(
            select(User, Project).join(Project, User.project_id == Project.id).order_by(User.name)
        ).all()
        return [_user_view(user, project) for user, project in rows]


def list_projects(rt: Runtime, who: Principal, name: str | None = None) -> list[ProjectView]:
    """Projects ``who`` can see (an admin: all; anyone else: its own), optionally by name."""
    with rt.sessions() as s:
        query = select(Project).order_by(Project.name)
        if not who.is_admin:
            query = query.where(Project.id == who.project_id)
        if name is not None:
            query = query.where(Project.name == name)
        return [ProjectView(p.id, p.name) for p in s.scalars(query)]


def get_project(rt: Runtime, who: Principal, project_id: str) -> ProjectView:
    """One project by id; 404 when unknown or not visible to ``who``."""
    with rt.sessions() as s:
        row = s.get(Project, project_id)
    if row is None or not (who.is_admin or row.id == who.project_id):
        raise NotFound(f"Could not find project: {project_id}.")
    return ProjectView(row.id, row.name)


def ensure_admin_login(
    rt: Runtime, project_id: str, existing: Mapping[str, object]
) -> dict[str, str]:
    """The admin's login for ``credentials.json``: ``auth_url``, ``username``,
    ``password``, ``project_name``.

    The password in ``existing`` (the file as it was) is kept while it still works, so a
    restart keeps it; otherwise (first start, lost file) the admin user gets a new random
    password. The caller must keep the result private.
    """
    with rt.sessions() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise NotFound(f"project {project_id!r} not found")
        project_name = project.name
        user = s.scalar(select(User).where(User.name == ADMIN_USER))
        stored = user.password_hash if user is not None else None
        kept = user is not None and user.project_id == project_id and user.is_admin
    password = existing.get("password")
    if not (kept and isinstance(password, str) and verify_password(password, stored)):
        password = new_password()
        _set_admin_password(rt, project_id, hash_password(password))
    return {
        "auth_url": f"{rt.settings.base_url}/v3",
        "username": ADMIN_USER,
        "password": password,
        "project_name": project_name,
    }


def _set_admin_password(rt: Runtime, project_id: str, password_hash: str) -> None:
    with rt.sessions.begin() as s:
        user = s.scalar(select(User).where(User.name == ADMIN_USER))
        if user is None:
            s.add(
                User(
                    id=uuid.uuid4().hex,
                    name=ADMIN_USER,
                    password_hash=password_hash,
                    project_id=project_id,
                    is_admin=True,
                    created=utcnow(),
                )
            )
        else:
            user.password_hash = password_hash
            user.project_id = project_id
            user.is_admin = True


def _in_default_domain(domain: DomainRef | None) -> bool:
    if domain is None:
        return True
    if domain.id is not None and domain.id != DEFAULT_DOMAIN_ID:
        return False
    return domain.name is None or domain.name == DEFAULT_DOMAIN_NAME


def _find_user(s: Session, given: PasswordUser) -> User | None:
    if given.id is not None:
        return s.get(User, given.id)
    if not _in_default_domain(given.domain):
        return None
    return s.scalar(select(User).where(User.name == given.name))


def _scope_project(s: Session, user: User, scope: Scope | None) -> Project:
    if scope is None:
        project = s.get(Project, user.project_id)
        ref = user.project_id
    else:
        wanted = scope.project
        ref = wanted.id or f"{wanted.name} (domain {DEFAULT_DOMAIN_NAME})"
        if wanted.id is not None:
            project = s.get(Project, wanted.id)
        elif _in_default_domain(wanted.domain):
            project = s.scalar(select(Project).where(Project.name == wanted.name))
        else:
            project = None
    if project is None:
        raise Unauthorized(f"Could not find project: {ref}.")
    if project.id != user.project_id:
        raise Unauthorized(f"User {user.name} has no access to project {project.name}.")
    return project


def _subject(
    s: Session, who: Principal, caller_token: str, subject: str | None
) -> tuple[Token, User, Project]:
    missing = NotFound("Could not find token: the X-Subject-Token is unknown or has expired.")
    if not subject:
        raise BadRequest("Expecting to find the token to check in the X-Subject-Token header.")
    row = s.get(Token, hash_token(subject))
    if row is None or row.user_id is None or row.expires_at is None:
        raise missing
    if not who.is_admin and hash_token(caller_token) != row.token_hash:
        raise Forbidden(
            "You are not authorized to perform the requested action: only an admin may "
            "look at another caller's token."
        )
    if row.expires_at <= utcnow():
        raise missing
    user = s.get(User, row.user_id)
    project = s.get(Project, row.project_id)
    if user is None or project is None:
        raise missing
    return row, user, project


def _grant(row: Token, user: User, project: Project) -> TokenGrant:
    assert row.expires_at is not None
    digest = hashlib.sha256(b"audit:" + row.token_hash.encode()).digest()[:16]
    return TokenGrant(
        user_id=user.id,
        user_name=user.name,
        project_id=project.id,
        project_name=project.name,
        is_admin=row.is_admin,
        issued_at=row.created,
        expires_at=row.expires_at,
        audit_id=base64.urlsafe_b64encode(digest).decode().rstrip("="),
    )


def _is_admin_project(s: Session, project_id: str) -> bool:
    admin_token = select(Token.token_hash).where(Token.project_id == project_id, Token.is_admin)
    return s.scalar(admin_token.limit(1)) is not None


def _user_view(user: User, project: Project) -> UserView:
    return UserView(user.id, user.name, project.id, project.name, user.is_admin)
