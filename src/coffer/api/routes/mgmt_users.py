"""Admin routes for password login users (Coffer extension beside Trove's ``mgmt``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from coffer.api.deps import PrincipalDep, RuntimeDep
from coffer.api.openapi import AUTHENTICATED, replies
from coffer.api.routes.common import PREFIX
from coffer.contracts.api_v1_replies import LoginUserList, LoginUserReply
from coffer.contracts.identity import LoginUserBody
from coffer.services import identity

router = APIRouter(prefix=PREFIX + "/mgmt", tags=["mgmt"])


@router.post("/users", **replies(LoginUserReply, *AUTHENTICATED, 404))
def create_user(
    project_id: str, body: LoginUserBody, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    """A user who logs in with a password (``POST /v3/auth/tokens``) into ``project``
    (name or id). 400 for a bad or taken name or a short password, 404 for an unknown
    project. The password is stored hashed and never returned."""
    who.require_admin()
    u = body.user
    return {
        "user": identity.create_user(
            rt, name=u.name, password=u.password, project=u.project
        ).as_dict()
    }


@router.get("/users", **replies(LoginUserList, *AUTHENTICATED))
def list_users(project_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    who.require_admin()
    return {"users": [user.as_dict() for user in identity.list_users(rt)]}
