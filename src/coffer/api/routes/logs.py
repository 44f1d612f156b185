"""Trove's instance log routes: list the logs, and show, enable, disable, publish or
discard one (``services.instance_logs``). Both answer 200, as Trove does."""

from __future__ import annotations

from fastapi import APIRouter

from coffer.api.deps import PrincipalDep, RuntimeDep, scope
from coffer.api.openapi import AGENT, AUTHENTICATED, replies
from coffer.api.routes.common import PREFIX
from coffer.contracts.guest_logs import GuestLogAction, GuestLogList, GuestLogReply, GuestLogView
from coffer.services import instance_logs

router = APIRouter(prefix=PREFIX + "/instances/{instance_id}", tags=["logs"])


@router.get("/log", **replies(GuestLogList, *AUTHENTICATED, 404, 422, *AGENT))
async def list_logs(
    project_id: str, instance_id: str, rt: RuntimeDep, who: PrincipalDep
) -> GuestLogList:
    views = await instance_logs.list_logs(rt, scope(who, project_id), instance_id)
    return GuestLogList(logs=[GuestLogView.model_validate(v) for v in views])


@router.post("/log", **replies(GuestLogReply, *AUTHENTICATED, 404, 409, 422, *AGENT))
async def log_action(
    project_id: str, instance_id: str, body: GuestLogAction, rt: RuntimeDep, who: PrincipalDep
) -> GuestLogReply:
    """Only ``name``: show the log. With one of ``enable``, ``disable``, ``publish`` or
    ``discard`` set to 1: do that, then show it."""
    view = await instance_logs.act(rt, scope(who, project_id), instance_id, body)
    return GuestLogReply(log=GuestLogView.model_validate(view))
