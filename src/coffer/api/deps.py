"""Request-scoped dependencies: the runtime and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from coffer.services.auth import Principal, authenticate
from coffer.services.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(runtime)]


async def principal(
    request: Request,
    rt: RuntimeDep,
    x_auth_token: Annotated[str | None, Header()] = None,
) -> Principal:
    """The caller, checked against the project id in the path (403 on mismatch)."""
    who = await run_in_threadpool(authenticate, rt, x_auth_token)
    project_id = request.path_params.get("project_id")
    if project_id is not None:
        who.check_project(project_id)
    request.state.principal = who  # for the audit trail (``audit`` middleware)
    return who


PrincipalDep = Annotated[Principal, Depends(principal)]


def scope(who: Principal, project_id: str) -> str | None:
    """Project filter for single-resource routes: admins reach every project's resources."""
    return None if who.is_admin else project_id
