"""The agent protocol endpoints (``/agent/v1``), authenticated by host credentials."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from starlette.concurrency import run_in_threadpool

from coffer.api.deps import RuntimeDep
from coffer.contracts.agent_v1 import (
    CommandResult,
    Heartbeat,
    HeartbeatResponse,
    LogArchivesRequest,
    LogArchivesResponse,
    PollRequest,
    PollResponse,
    RegisterRequest,
    RegisterResponse,
    RolesRequest,
    RolesResponse,
)
from coffer.services import agents, log_archives
from coffer.services.commands import CommandBus

router = APIRouter(prefix="/agent/v1", tags=["agent"], include_in_schema=False)

Credential = Annotated[str | None, Header(alias="X-Host-Credential")]


@router.post("/register")
def register(body: RegisterRequest, rt: RuntimeDep) -> RegisterResponse:
    return agents.register(rt, body)


@router.post("/poll")
async def poll(body: PollRequest, rt: RuntimeDep, credential: Credential = None) -> PollResponse:
    host_id = await run_in_threadpool(agents.authenticate_host, rt, credential)
    return await agents.poll(rt, host_id, body.running, body.wait_s)


@router.post("/commands/{command_id}/result")
def result(
    command_id: str, body: CommandResult, rt: RuntimeDep, credential: Credential = None
) -> dict[str, bool]:
    host_id = agents.authenticate_host(rt, credential)
    return {"recorded": CommandBus(rt).complete(host_id, command_id, body)}


@router.post("/heartbeat")
def heartbeat(body: Heartbeat, rt: RuntimeDep, credential: Credential = None) -> HeartbeatResponse:
    host_id = agents.authenticate_host(rt, credential)
    return agents.heartbeat(rt, host_id, body)


@router.post("/log-archives")
def archives(
    body: LogArchivesRequest, rt: RuntimeDep, credential: Credential = None
) -> LogArchivesResponse:
    host_id = agents.authenticate_host(rt, credential)
    return LogArchivesResponse(
        archives=log_archives.archive_targets(rt, host_id, body.instance_ids)
    )


@router.post("/roles")
def roles(body: RolesRequest, rt: RuntimeDep, credential: Credential = None) -> RolesResponse:
    host_id = agents.authenticate_host(rt, credential)
    return RolesResponse(demoted=agents.demoted(rt, host_id, body.instance_ids))
