"""The conductor side of the agent protocol: registration, polling, results, heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from coffer.clock import utcnow
from coffer.contracts.agent_v1 import (
    Heartbeat,
    HeartbeatResponse,
    InstanceObservation,
    PollResponse,
    RegisterRequest,
    RegisterResponse,
)
from coffer.db.models import Backup, Host, Instance, JoinToken
from coffer.domain.states import BackupState, ServiceStatus, TaskStatus
from coffer.errors import Unauthorized
from coffer.security import hash_token, new_token
from coffer.services import events, log_archives, metric_history
from coffer.services.commands import CommandBus
from coffer.services.runtime import Runtime
from coffer.settings import parse_port_range

log = logging.getLogger("coffer.agents")


def create_join_token(rt: Runtime) -> str:
    token = new_token()
    with rt.sessions.begin() as s:
        s.add(JoinToken(token_hash=hash_token(token), created=utcnow()))
    return token


def register(rt: Runtime, req: RegisterRequest) -> RegisterResponse:
    """Exchange a join token for a host credential. Re-registering a host name rotates it."""
    low, high = parse_port_range(rt.settings.port_range)
    credential = new_token()
    with rt.sessions.begin() as s:
        if s.get(JoinToken, hash_token(req.join_token)) is None:
            raise Unauthorized("the join token is not valid")
        host = s.scalar(select(Host).where(Host.name == req.host_name))
        if host is None:
            host = Host(
                id=str(uuid.uuid4()),
                name=req.host_name,
                port_min=low,
                port_max=high,
                last_seq=0,
                created=utcnow(),
            )
            s.add(host)
        host.address = req.address
        host.engines = json.dumps(req.engines)
        host.facts = json.dumps(req.facts)
        host.credential_hash = hash_token(credential)
        host_id = host.id
    return RegisterResponse(
        host_id=host_id,
        credential=credential,
        heartbeat_interval_s=rt.settings.heartbeat_interval_s,
    )


def authenticate_host(rt: Runtime, credential: str | None) -> str:
    if not credential:
        raise Unauthorized("missing host credential")
    with rt.sessions() as s:
        host_id = s.scalar(select(Host.id).where(Host.credential_hash == hash_token(credential)))
    if host_id is None:
        raise Unauthorized("the host credential is not valid; register again")
    return host_id


async def poll(rt: Runtime, host_id: str, running: list[str], wait_s: float) -> PollResponse:
    """Long poll: return as soon as there is work, or empty after ``wait_s``."""
    bus = CommandBus(rt)
    event = rt.wakeup.event(host_id)
    end = time.monotonic() + wait_s
    while True:
        event.clear()
        commands = await asyncio.to_thread(bus.take_deliverable, host_id, running)
        remaining = end - time.monotonic()
        if commands or remaining <= 0 or rt.wakeup.closed:
            return PollResponse(commands=commands)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=min(remaining, rt.wakeup.recheck_s))


_VOLUME_FAULT = "volume-guard"


class _Stored(Protocol):
    """What the heartbeat compares an observation with (a row of ``_store_observations``)."""

    service_status: str
    service_seq: int
    volume_used_bytes: int | None
    fault_message: str | None
    fault_details: str | None


def heartbeat(rt: Runtime, host_id: str, hb: Heartbeat) -> HeartbeatResponse:
    """Store observed state; a heartbeat older than the last one seen is dropped.

    The write is kept short whatever the number of instances (it holds the metadata
    database's write lock, which the workflows' steps wait for): every observed instance's
    ``service_status_updated`` is stamped in one statement, and a row is updated on its
    own only when what was observed of it changed. Afterwards the heartbeat is counted
    for ``/metrics`` and, if accepted, sampled into the metrics history (best effort: a
    failed sample is logged, the heartbeat stays stored).
    """
    now = utcnow()
    with rt.sessions.begin() as s:
        accepted = s.execute(
            update(Host)
            .where(Host.id == host_id, Host.last_seq < hb.seq)
            .values(
                last_seq=hb.seq,
                last_heartbeat=now,
                engines=json.dumps(hb.engines),
                facts=json.dumps(hb.facts),
            )
        ).rowcount  # type: ignore[attr-defined]
        if accepted and hb.instances:
            _store_observations(s, host_id, hb.instances, now)
    rt.metrics.heartbeat(host_id, hb, accepted=bool(accepted))
    if accepted:
        try:
            metric_history.record(rt, host_id, hb)
        except SQLAlchemyError as exc:
            log.warning("metrics history sample not stored: %s", type(exc).__name__)
    return HeartbeatResponse(
        accepted=bool(accepted), heartbeat_interval_s=rt.settings.heartbeat_interval_s
    )


def _store_observations(
    s: Session, host_id: str, observations: list[InstanceObservation], now: datetime
) -> None:
    """Apply the observations of the host's live instances (not those still BUILDING:
    their create owns their state until it finishes)."""
    known = {o.instance_id: o for o in observations}
    rows = s.execute(
        select(
            Instance.id,
            Instance.project_id,
            Instance.engine_restarts,
            Instance.task_status,
            Instance.task_workflow_id,
            Instance.service_status,
            Instance.service_seq,
            Instance.volume_used_bytes,
            Instance.fault_message,
            Instance.fault_details,
        ).where(
            Instance.host_id == host_id,
            Instance.deleted.is_(False),
            Instance.task_status != TaskStatus.BUILDING.value,
            Instance.id.in_(list(known)),
        )
    ).all()
    if not rows:
        return
    s.execute(
        update(Instance)
        .where(Instance.id.in_([row.id for row in rows]))
        .values(service_status_updated=now)
    )
    for row in rows:
        obs = known[row.id]
        changes = _observed_changes(row, obs, now)
        if obs.restarts != row.engine_restarts:
            changes["engine_restarts"] = obs.restarts
            if obs.restarts > row.engine_restarts:  # (a restarted agent counts from 0)
                _engine_restarted(s, row, obs.restarts - row.engine_restarts)
        if changes:
            s.execute(update(Instance).where(Instance.id == row.id).values(**changes))
        if obs.restorable_until is not None:
            log_archives.advance(s, row.id, obs.restorable_until)
        if obs.replication is not None:
            _store_replication(s, row.id, obs.replication)
        if obs.backup_bytes is not None and row.task_status == TaskStatus.BACKUP.value:
            s.execute(
                update(Backup)
                .where(
                    Backup.workflow_id == row.task_workflow_id,
                    Backup.state == BackupState.BUILDING.value,
                )
                .values(progress_bytes=obs.backup_bytes)
            )


def _engine_restarted(s: Session, row: Any, times: int) -> None:
    """What the agent did by itself: the engine died and it started it again."""
    events.record(
        s,
        project_id=row.project_id,
        action="instance.engine.restart",
        resource_type="instance",
        resource_id=row.id,
        outcome="done",
        detail="the engine died; its agent started it again"
        + (f" ({times} times)" if times > 1 else ""),
    )


def _store_replication(s: Session, instance_id: str, state: dict[str, Any]) -> None:
    """Keep the reported replication state (lag rounded to 0.1 s: a row is rewritten
    only when what users see of it changed)."""
    lag = state.get("lag_s")
    shown = {
        "role": str(state.get("role", "")),
        "streaming": bool(state.get("streaming", False)),
        "lag_s": round(float(lag), 1) if isinstance(lag, int | float) else None,
        "position": int(state.get("position") or 0),
        "detail": str(state.get("detail", ""))[:500],
    }
    text = json.dumps(shown, sort_keys=True)
    s.execute(
        update(Instance)
        .where(Instance.id == instance_id, Instance.replication_json.is_distinct_from(text))
        .values(replication_json=text)
    )


def _observed_changes(row: _Stored, obs: InstanceObservation, now: datetime) -> dict[str, Any]:
    """The columns of ``row`` that ``obs`` changes (empty when it confirms them).

    An observation older than the stored one (``seq``) changes no status or fault; the
    sequence number is only advanced along with a status it brings.
    """
    changes: dict[str, Any] = {}
    if obs.seq > row.service_seq:
        status = ServiceStatus(obs.service_status).value
        if status != row.service_status:
            changes.update(service_status=status, service_seq=obs.seq)
        changes.update(_volume_fault_changes(row, obs, now))
    if obs.volume_used_bytes != row.volume_used_bytes:
        changes["volume_used_bytes"] = obs.volume_used_bytes
    return changes


def _volume_fault_changes(row: _Stored, obs: InstanceObservation, now: datetime) -> dict[str, Any]:
    """Show why an instance is BLOCKED as its fault; clear that fault once it is not."""
    if obs.service_status == ServiceStatus.BLOCKED.value and obs.detail:
        if row.fault_message != obs.detail:
            return {
                "fault_message": obs.detail,
                "fault_details": _VOLUME_FAULT,
                "fault_created": now,
            }
    elif row.fault_details == _VOLUME_FAULT:
        return {"fault_message": None, "fault_details": None, "fault_created": None}
    return {}


def demoted(rt: Runtime, host_id: str, instance_ids: list[str]) -> list[str]:
    """Which of the host's ``instance_ids`` must not take writes: those that follow a
    source now (failed over while their agent was away) or no longer exist."""
    with rt.sessions() as s:
        rows = s.execute(
            select(Instance.id, Instance.replica_of_id, Instance.deleted).where(
                Instance.host_id == host_id, Instance.id.in_(instance_ids)
            )
        ).all()
    known = {row.id: row for row in rows}
    return sorted(
        iid
        for iid in instance_ids
        if iid not in known or known[iid].deleted or known[iid].replica_of_id is not None
    )
