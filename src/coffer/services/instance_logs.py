"""Instance logs (Trove's ``instances/{id}/log``): list, enable/disable, show, publish and
discard the engine's logs (``domain.guest_logs``).

Which USER logs are on is stored with the instance (``Instance.guest_logs_json``) and
travels in its spec (``InstanceSpec.logs``), so every later configure, restart or resize
renders it; switching one applies it live (``APPLY_PARAMETERS``). Everything else is the
agent's (``agent.guest_logs``): the log files are on its host, and it publishes them to
the instance's backup store — the container new backups of the instance go to — under
``<project>/<instance>/guest-logs/<log>/``. Requests are validated whole before anything
is sent; the instance must be idle and its engine up (422 otherwise, as Trove answers a
busy instance).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from coffer import engines
from coffer.contracts.agent_v1 import CommandKind
from coffer.contracts.guest_logs import GuestLogAction
from coffer.db.models import Instance
from coffer.domain.guest_logs import (
    LogAction,
    LogDef,
    LogType,
    find_log,
    instance_prefix,
    object_prefix,
    parse_action,
)
from coffer.domain.states import ServiceStatus, TaskStatus
from coffer.errors import BadRequest, Conflict, NotFound, UnprocessableEntity
from coffer.services import backup_strategies, records
from coffer.services.commands import CommandBus
from coffer.services.records import InstanceRecord
from coffer.services.runtime import Runtime
from coffer.storage import open_store

__all__ = ["act", "list_logs", "remove_published"]

_READY_TASKS = {TaskStatus.NONE.value, TaskStatus.RESTART_REQUIRED.value}
_READY_SERVICE = {ServiceStatus.HEALTHY.value, ServiceStatus.RUNNING.value}


async def list_logs(rt: Runtime, project_id: str | None, instance_id: str) -> list[dict[str, Any]]:
    """Every log the instance's datastore exposes, as GuestLog views."""
    with rt.sessions() as s:
        rec = _ready(records.load(s, instance_id, project_id))
        defs = engines.catalog(rec.version.manager).guest_logs
        job = _job(rt, s, rec, defs, LogAction.SHOW)
    return await _send(rt, rec, job, rt.settings.admin_call_timeout_s)


async def act(
    rt: Runtime, project_id: str | None, instance_id: str, body: GuestLogAction
) -> dict[str, Any]:
    """Carry out what ``body`` asks for on one log (one action, or discard then
    publish); return its view after. Checked in this order, before anything is sent:
    the flags (400), the instance (404), the log's name (404), the action against the
    log's type (400), the instance's state (422)."""
    try:
        actions = parse_action(body.model_dump(exclude={"name"}))
    except ValueError as exc:
        raise BadRequest(f"Validation error: {exc}") from None
    switch = actions[0] if actions[0] in (LogAction.ENABLE, LogAction.DISABLE) else None
    with rt.sessions() as s:
        rec = records.load(s, instance_id, project_id)
        defs = engines.catalog(rec.version.manager).guest_logs
        try:
            d = find_log(defs, body.name, rec.datastore.name)
        except KeyError as exc:
            raise NotFound(str(exc.args[0])) from None
        if switch is not None and d.type is LogType.SYS:
            raise BadRequest(
                f"log {d.name!r} is a SYS log: it is always on and cannot be "
                f"{switch.value}d; USER logs can"
            )
        _ready(rec)
    if switch is not None:
        await _switch(rt, rec, d.name, on=switch is LogAction.ENABLE)
        actions = (LogAction.SHOW,)
    with rt.sessions() as s:
        rec = records.load(s, instance_id, project_id)
        jobs = [_job(rt, s, rec, (d,), action) for action in actions]
    view: dict[str, Any] = {}
    for action, job in zip(actions, jobs, strict=True):
        timeout = rt.settings.admin_call_timeout_s
        if action is LogAction.PUBLISH:
            timeout = rt.settings.action_timeout_s
        (view,) = await _send(rt, rec, job, timeout)
    return view


def remove_published(rt: Runtime, instance_id: str) -> int:
    """Remove everything published of the instance's logs (its deletion does this);
    idempotent; returns how many objects went. Published parts in a container other
    than the one the instance's backups go to now are not found."""
    with rt.sessions() as s:
        inst = s.get(Instance, instance_id)
        if inst is None:
            return 0
        container = backup_strategies.container_for(rt, s, inst.project_id, inst.id)
        prefix = instance_prefix(inst.project_id, inst.id)
    store = rt.settings.store_config.model_copy(update={"container": container})
    return open_store(store).purge(prefix)


def _ready(rec: InstanceRecord) -> InstanceRecord:
    inst = rec.instance
    if inst.task_status not in _READY_TASKS or inst.service_status not in _READY_SERVICE:
        raise UnprocessableEntity(
            f"Instance {inst.id} is not currently available for an action to be "
            f"performed (task {inst.task_status}, service {inst.service_status})."
        )
    return rec


async def _switch(rt: Runtime, rec: InstanceRecord, name: str, *, on: bool) -> None:
    """Store the log's switch and make the engine follow it live; on failure the switch
    goes back to what it was."""
    before = rec.instance.guest_logs_json or "[]"
    names = set(json.loads(before))
    wanted = names | {name} if on else names - {name}
    if wanted == names:
        return  # already so: nothing to apply
    after = json.dumps(sorted(wanted))
    _store_switches(rt, rec.instance.id, before, after)
    try:
        with rt.sessions() as s:
            fresh = records.load(s, rec.instance.id, None)
            spec = records.spec_of(fresh)
        await _command(rt, fresh, CommandKind.APPLY_PARAMETERS, {"spec": spec.model_dump()})
    except Exception:
        _store_switches(rt, rec.instance.id, after, before)
        raise


def _store_switches(rt: Runtime, instance_id: str, before: str, after: str) -> None:
    """Compare-and-set: a concurrent switch of the same instance's logs is refused."""
    with rt.sessions.begin() as s:
        changed = s.execute(
            update(Instance)
            .where(Instance.id == instance_id, Instance.guest_logs_json == before)
            .values(guest_logs_json=after)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(
                f"the logs of instance {instance_id} are being switched by another "
                "request; try again"
            )


def _job(
    rt: Runtime, s: Session, rec: InstanceRecord, defs: tuple[LogDef, ...], action: LogAction
) -> dict[str, Any]:
    """The agent's instructions (sealed in transit: the store config may hold
    credentials)."""
    inst = rec.instance
    container = backup_strategies.container_for(rt, s, inst.project_id, inst.id)
    store = rt.settings.store_config.model_copy(update={"container": container})
    return {
        "spec": records.spec_of(rec).model_dump(),
        "op": action.value,
        "store": store.model_dump(),
        "prefixes": {d.name: object_prefix(inst.project_id, inst.id, d.name) for d in defs},
    }


async def _send(
    rt: Runtime, rec: InstanceRecord, job: dict[str, Any], timeout_s: float
) -> list[dict[str, Any]]:
    result = await _command(rt, rec, CommandKind.GUEST_LOG, job, timeout_s)
    views: list[dict[str, Any]] = result["logs"]
    return views


async def _command(
    rt: Runtime,
    rec: InstanceRecord,
    kind: CommandKind,
    payload: dict[str, Any],
    timeout_s: float | None = None,
) -> dict[str, Any]:
    command_id = f"log-{rec.instance.id}-{uuid.uuid4().hex}"
    bus = CommandBus(rt)
    bus.submit(
        command_id=command_id,
        host_id=rec.host.id,
        instance_id=rec.instance.id,
        kind=kind,
        payload=payload,
    )
    return await bus.wait_async(command_id, timeout_s or rt.settings.admin_call_timeout_s)
