"""The audit middleware: every state-changing request made with a valid token is written
to the events (``services.events``) once answered, refused or not."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from coffer.services import events
from coffer.services.auth import Principal
from coffer.services.runtime import Runtime

__all__ = ["install"]

log = logging.getLogger("coffer.audit")

_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: a created resource's id is read from replies up to this size
_BODY_MAX = 256 * 1024


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def audit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        who = getattr(request.state, "principal", None)
        route = getattr(request.scope.get("route"), "path", None)
        project_id = request.path_params.get("project_id")
        if request.method not in _CHANGES or not isinstance(who, Principal) or not route:
            return response
        created_id = None
        if request.method == "POST" and response.status_code < 300:
            response, created_id = await _created_id(response)
        rt: Runtime = request.app.state.runtime
        try:
            await run_in_threadpool(
                events.record_request,
                rt,
                project_id=str(project_id or who.project_id),
                actor=f"project {who.project_name}" + (" (admin)" if who.is_admin else ""),
                method=request.method,
                route=route,
                path=request.url.path,
                path_params=dict(request.path_params),
                status=response.status_code,
                created_id=created_id,
            )
        except Exception:  # the answer stands; a lost audit entry is logged
            log.exception("could not record %s %s", request.method, request.url.path)
        return response


async def _created_id(response: Response) -> tuple[Response, str | None]:
    """The id of the one object a creating reply holds (``{"instance": {"id": ...}}``);
    the reply, rebuilt from its read body."""
    chunks = [chunk async for chunk in response.body_iterator]  # type: ignore[attr-defined]
    body = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
    rebuilt = Response(
        content=body,
        status_code=response.status_code,
        headers=dict(response.headers),
        media_type=response.media_type,
    )
    if len(body) > _BODY_MAX:
        return rebuilt, None
    try:
        data = json.loads(body)
    except ValueError:
        return rebuilt, None
    if isinstance(data, dict) and len(data) == 1:
        (inner,) = data.values()
        if isinstance(inner, dict) and isinstance(inner.get("id"), str):
            return rebuilt, inner["id"]
    return rebuilt, None
