"""The agent's HTTP client for the control plane; it keeps the host credential."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import httpx

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

log = logging.getLogger("coffer.agent.control")


class NotRegistered(Exception):
    """The server does not (or no longer) know this host's credential."""


class ControlClient:
    def __init__(self, server_url: str, credential_file: Path) -> None:
        self._http = httpx.AsyncClient(base_url=server_url.rstrip("/") + "/agent/v1", timeout=10.0)
        self._file = credential_file
        self.credential: str | None = self._load()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _load(self) -> str | None:
        try:
            data = json.loads(self._file.read_text())
        except (OSError, ValueError):
            return None
        cred = data.get("credential")
        return cred if isinstance(cred, str) else None

    def _store(self, resp: RegisterResponse) -> None:
        tmp = self._file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"host_id": resp.host_id, "credential": resp.credential}, f)
        os.replace(tmp, self._file)
        self.credential = resp.credential

    async def register(self, req: RegisterRequest) -> RegisterResponse:
        r = await self._http.post("/register", json=req.model_dump())
        if r.status_code != 200:
            raise NotRegistered(f"registration refused ({r.status_code}): {r.text[:200]}")
        resp = RegisterResponse.model_validate(r.json())
        self._store(resp)
        return resp

    async def _post(self, path: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        if not self.credential:
            raise NotRegistered("no host credential yet")
        r = await self._http.post(
            path, json=body, headers={"X-Host-Credential": self.credential}, timeout=timeout
        )
        if r.status_code == 401:
            raise NotRegistered("the server does not accept this host's credential")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    async def poll(self, running: list[str], wait_s: float) -> PollResponse:
        body = PollRequest(wait_s=wait_s, running=running).model_dump()
        return PollResponse.model_validate(await self._post("/poll", body, timeout=wait_s + 10))

    async def result(self, command_id: str, result: CommandResult) -> None:
        await self._post(f"/commands/{command_id}/result", result.model_dump())

    async def heartbeat(self, hb: Heartbeat) -> HeartbeatResponse:
        return HeartbeatResponse.model_validate(await self._post("/heartbeat", hb.model_dump()))

    async def log_archives(self, instance_ids: list[str]) -> LogArchivesResponse:
        body = LogArchivesRequest(instance_ids=instance_ids).model_dump()
        return LogArchivesResponse.model_validate(await self._post("/log-archives", body))

    async def roles(self, instance_ids: list[str]) -> RolesResponse:
        body = RolesRequest(instance_ids=instance_ids).model_dump()
        return RolesResponse.model_validate(await self._post("/roles", body))
