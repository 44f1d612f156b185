"""The Keystone v3 subset under ``/v3``: password login, token validation and revocation,
project lookup. Enough for keystoneauth's password plugin, the openstack CLI and
python-troveclient to log in with a user name and password.

Errors leave in Keystone's shape (``api.keystone_errors``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from coffer.api import keystone_views as views
from coffer.api.deps import AuthTokenDep, RuntimeDep
from coffer.api.keystone_errors import KeystoneRoute
from coffer.api.openapi import keystone_replies
from coffer.contracts.api_v1_replies import (
    KeystoneProjectList,
    KeystoneVersionReply,
    ProjectReply,
    TokenReply,
)
from coffer.contracts.identity import AuthRequest
from coffer.services import auth, identity
from coffer.services.auth import Principal
from coffer.services.runtime import Runtime

router = APIRouter(prefix="/v3", tags=["identity"], route_class=KeystoneRoute)

SubjectToken = Annotated[str | None, Header(alias="X-Subject-Token")]


def _caller(rt: Runtime, token: str | None) -> tuple[Principal, str]:
    """The caller and its token (401 when missing, unknown or expired)."""
    who = auth.authenticate(rt, token)
    return who, token or ""


def base_url(rt: Runtime, request: Request) -> str:
    """Where clients reach this server: the public URL if set, else the request's own."""
    return rt.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")


@router.get("", **keystone_replies(KeystoneVersionReply))
@router.get("/", include_in_schema=False)
def version(request: Request, rt: RuntimeDep) -> dict[str, Any]:
    """Version discovery for keystoneauth (no token needed)."""
    return {"version": views.version(base_url(rt, request))}


@router.post(
    "/auth/tokens",
    **keystone_replies(TokenReply, 400, 401, status=201, subject_token=True),
)
def issue_token(body: AuthRequest, request: Request, rt: RuntimeDep) -> JSONResponse:
    """Password login: 201, the token in ``X-Subject-Token``, the token document in the
    body. 401 for a wrong password, an unknown user or a project out of reach."""
    token, grant = identity.login(rt, body)
    return JSONResponse(
        status_code=201,
        content=views.token(base_url(rt, request), grant),
        headers={"X-Subject-Token": token},
    )


@router.get("/auth/tokens", **keystone_replies(TokenReply, 400, 401, 403, 404, subject_token=True))
def validate_token(
    request: Request, rt: RuntimeDep, caller: AuthTokenDep, subject: SubjectToken = None
) -> JSONResponse:
    """What the login token in ``X-Subject-Token`` says (caller's own, or any for an
    admin); 404 once it has expired or been revoked."""
    grant = identity.validate(rt, *_caller(rt, caller), subject)
    return JSONResponse(
        content=views.token(base_url(rt, request), grant),
        headers={"X-Subject-Token": subject or ""},
    )


@router.head("/auth/tokens", **keystone_replies(None, 400, 401, 403, 404, bodies=False))
def check_token(rt: RuntimeDep, caller: AuthTokenDep, subject: SubjectToken = None) -> Response:
    """200 while the login token in ``X-Subject-Token`` is valid, else 404 (no body)."""
    identity.validate(rt, *_caller(rt, caller), subject)
    return Response(status_code=200)


@router.delete("/auth/tokens", **keystone_replies(None, 400, 401, 403, 404, status=204))
def revoke_token(rt: RuntimeDep, caller: AuthTokenDep, subject: SubjectToken = None) -> Response:
    """Revoke the login token in ``X-Subject-Token`` (a logout); it stops working at once."""
    identity.revoke(rt, *_caller(rt, caller), subject)
    return Response(status_code=204)


@router.get("/projects", **keystone_replies(KeystoneProjectList, 400, 401))
def list_projects(
    request: Request, rt: RuntimeDep, caller: AuthTokenDep, name: str | None = None
) -> dict[str, Any]:
    """Projects the caller can see (an admin: all; others: their own), by ``name`` if given."""
    who = auth.authenticate(rt, caller)
    base = base_url(rt, request)
    return {
        "projects": [views.project(base, p) for p in identity.list_projects(rt, who, name)],
        "links": {"self": str(request.url), "previous": None, "next": None},
    }


@router.get("/projects/{project_id}", **keystone_replies(ProjectReply, 400, 401, 404))
def show_project(
    project_id: str, request: Request, rt: RuntimeDep, caller: AuthTokenDep
) -> dict[str, Any]:
    who = auth.authenticate(rt, caller)
    return {
        "project": views.project(base_url(rt, request), identity.get_project(rt, who, project_id))
    }
