"""Request-scoped dependencies: the runtime, the authenticated principal, and the rule
that request text holds no NUL character."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from coffer.errors import BadRequest
from coffer.services.auth import Principal, authenticate
from coffer.services.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(runtime)]

#: the ``X-Auth-Token`` header, declared as the API's security scheme in /openapi.json;
#: a missing header is ``None`` here and 401 from ``authenticate``, in Trove's envelope
auth_token = APIKeyHeader(
    name="X-Auth-Token",
    scheme_name="X-Auth-Token",
    description="A project token (credentials.json, POST /mgmt/tokens) or a Keystone login "
    "token (POST /v3/auth/tokens).",
    auto_error=False,
)
AuthTokenDep = Annotated[str | None, Security(auth_token)]


async def principal(
    request: Request,
    rt: RuntimeDep,
    x_auth_token: AuthTokenDep,
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


#: a JSON ``\u0000`` escape (after an even number of backslashes, so not ``\\u0000``)
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


async def refuse_nul(request: Request) -> None:
    """400 when the path, the query or a JSON body holds a NUL character.

    No text Coffer stores or passes on may hold one (PostgreSQL's text types cannot), so
    it is refused the same way whatever the metadata database, before anything is read
    or written. Raw control characters in a JSON body are refused by the JSON parser.
    """
    where = None
    if "\x00" in request.scope["path"]:
        where = "the path"
    elif any("\x00" in k or "\x00" in v for k, v in request.query_params.multi_items()):
        where = "the query"
    elif _JSON_NUL.search(await request.body()):
        where = "the body"
    if where is not None:
        raise BadRequest(f"Validation error: {where} holds a NUL character (\\u0000)")
