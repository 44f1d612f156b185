"""Idempotent steps shared by the instance workflows.

Each step may run more than once (a server killed mid-step re-runs it on recovery), so
each one either checks before writing or writes the same thing again.
"""

from __future__ import annotations

import json
from typing import Any

from dbos import DBOS
from sqlalchemy import update

from coffer.clock import utcnow
from coffer.contracts.agent_v1 import CommandKind
from coffer.db.models import Flavor, Instance
from coffer.domain.states import ServiceStatus, TaskStatus
from coffer.errors import CofferError, EngineError
from coffer.services import placement, records
from coffer.services.commands import CommandBus
from coffer.workflows.runtime import current


@DBOS.step()
def send_command(
    command_id: str, instance_id: str, kind: str, extra: dict[str, Any], sealed_extra: str = ""
) -> None:
    """Queue ``kind`` for the instance's host with its current spec (plus ``extra``)."""
    rt = current()
    with rt.sessions() as s:
        rec = records.load(s, instance_id, None)
        flavor = s.get(Flavor, extra["flavor_id"]) if "flavor_id" in extra else None
        spec = records.spec_of(rec, flavor=flavor, volume_gb=extra.get("volume_gb"))
        host_id = rec.host.id
    payload: dict[str, Any] = {"spec": spec.model_dump()}
    if sealed_extra:
        payload.update(json.loads(rt.sealer.open(sealed_extra)))
    CommandBus(rt).submit(
        command_id=command_id,
        host_id=host_id,
        instance_id=instance_id,
        kind=CommandKind(kind),
        payload=payload,
    )


@DBOS.step()
def await_command(command_id: str, instance_id: str) -> dict[str, Any]:
    """Block until the agent reports the command, or the task's deadline passes."""
    rt = current()
    with rt.sessions() as s:
        inst = s.get(Instance, instance_id)
        deadline = inst.task_deadline if inst and inst.task_deadline else utcnow()
    return CommandBus(rt).wait(command_id, deadline)


@DBOS.step()
def finish_task(
    instance_id: str,
    workflow_id: str,
    *,
    observed: dict[str, Any] | None = None,
    flavor_id: str | None = None,
    volume_gb: int | None = None,
) -> None:
    """Return the instance to NONE, applying what the operation changed (idempotent)."""
    rt = current()
    values: dict[str, Any] = {
        "task_status": TaskStatus.NONE.value,
        "task_workflow_id": None,
        "task_deadline": None,
        "updated": utcnow(),
    }
    if observed and "service_status" in observed:
        values.update(
            service_status=ServiceStatus(observed["service_status"]).value,
            service_seq=int(observed.get("seq", 0)),
            service_status_updated=utcnow(),
        )
    if flavor_id:
        values["flavor_id"] = flavor_id
    if volume_gb:
        values["volume_gb"] = volume_gb
    with rt.sessions.begin() as s:
        s.execute(
            update(Instance)
            .where(Instance.id == instance_id, Instance.task_workflow_id == workflow_id)
            .values(**values)
        )


@DBOS.step()
def fail_task(instance_id: str, workflow_id: str, task: str, message: str, details: str) -> None:
    """Record a fault and leave the instance in ``task`` (an error task or NONE)."""
    rt = current()
    now = utcnow()
    with rt.sessions.begin() as s:
        s.execute(
            update(Instance)
            .where(Instance.id == instance_id, Instance.task_workflow_id == workflow_id)
            .values(
                task_status=task,
                task_workflow_id=None,
                task_deadline=None,
                fault_message=message,
                fault_details=details,
                fault_created=now,
                updated=now,
            )
        )


@DBOS.step()
def mark_deleted(instance_id: str, workflow_id: str) -> None:
    rt = current()
    with rt.sessions.begin() as s:
        inst = s.get(Instance, instance_id)
        if inst is None or inst.deleted or inst.task_workflow_id != workflow_id:
            return
        placement.release_port(s, inst)
        inst.deleted = True
        inst.deleted_at = utcnow()
        inst.task_status = TaskStatus.NONE.value
        inst.task_workflow_id = None
        inst.service_status = ServiceStatus.DELETED.value


def describe(exc: BaseException) -> tuple[str, str]:
    """A fault's message (for users) and details (for operators)."""
    if isinstance(exc, CofferError):
        return exc.message, type(exc).__name__
    return f"unexpected error: {type(exc).__name__}", repr(exc)[:2000]


__all__ = [
    "EngineError",
    "await_command",
    "describe",
    "fail_task",
    "finish_task",
    "mark_deleted",
    "send_command",
]
