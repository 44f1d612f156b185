"""Idempotent steps shared by the instance workflows.

Each step may run more than once (a server killed mid-step re-runs it on recovery), so
each one either checks before writing or writes the same thing again.
"""

from __future__ import annotations

import json
from typing import Any

from dbos import DBOS
from sqlalchemy import update
from sqlalchemy.orm import Session

from coffer import engines
from coffer.clock import utcnow
from coffer.contracts.agent_v1 import CommandKind
from coffer.db.models import Flavor, Instance
from coffer.domain.parameters import needs_restart
from coffer.domain.states import ServiceStatus, TaskStatus
from coffer.errors import CofferError
from coffer.services import events, metric_history, placement, records
from coffer.services.commands import CommandBus
from coffer.workflows.runtime import current

#: for steps that record an outcome (idempotent): a transient database error (e.g. SQLite
#: busy under load) is retried, because a lost record would leave a task or a backup
#: stuck in its running state for good
RECORDING_STEP = DBOS.step(retries_allowed=True, interval_seconds=0.5, max_attempts=6)


@DBOS.step()
def send_command(
    command_id: str,
    instance_id: str,
    kind: str,
    extra: dict[str, Any],
    sealed_extra: str = "",
    args: dict[str, Any] | None = None,
) -> None:
    """Queue ``kind`` for the instance's host with its current spec (``extra`` overriding
    its flavor, volume or parameters), plus ``args`` and the sealed ``sealed_extra``
    (for secrets) in the payload."""
    rt = current()
    with rt.sessions() as s:
        rec = records.load(s, instance_id, None)
        flavor = s.get(Flavor, extra["flavor_id"]) if "flavor_id" in extra else None
        spec = records.spec_of(
            rec, flavor=flavor, volume_gb=extra.get("volume_gb"), parameters=extra.get("parameters")
        )
        host_id = rec.host.id
    payload: dict[str, Any] = {"spec": spec.model_dump(), **(args or {})}
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


@RECORDING_STEP
def finish_task(
    instance_id: str,
    workflow_id: str,
    *,
    observed: dict[str, Any] | None = None,
    flavor_id: str | None = None,
    volume_gb: int | None = None,
    parameters: dict[str, Any] | None = None,
    restart_required: bool = False,
) -> None:
    """End the task (NONE, or RESTART_REQUIRED), applying what the operation changed.

    Idempotent: it only touches the instance while ``workflow_id`` still owns it.
    """
    rt = current()
    done = TaskStatus.RESTART_REQUIRED if restart_required else TaskStatus.NONE
    values: dict[str, Any] = {
        "task_status": done.value,
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
    if parameters is not None:
        values["parameters_json"] = json.dumps(parameters, sort_keys=True)
    with rt.sessions.begin() as s:
        task_event(s, instance_id, workflow_id, "done")
        s.execute(
            update(Instance)
            .where(Instance.id == instance_id, Instance.task_workflow_id == workflow_id)
            .values(**values)
        )


#: how an instance's task is named in its events
_TASK_ACTIONS = {
    TaskStatus.BUILDING.value: "build",
    TaskStatus.REBOOTING.value: "restart",
    TaskStatus.RESIZING.value: "resize",
    TaskStatus.DELETING.value: "delete",
    TaskStatus.UPDATING.value: "configure",
    TaskStatus.BACKUP.value: "backup",
    TaskStatus.PROMOTING.value: "promote",
    TaskStatus.EJECTING.value: "eject",
    TaskStatus.DETACHING.value: "detach",
}


def task_event(
    s: Session, instance_id: str, workflow_id: str, outcome: str, detail: str = ""
) -> None:
    """The event of the instance's task ending (only while ``workflow_id`` owns it)."""
    inst = s.get(Instance, instance_id)
    if inst is None or inst.task_workflow_id != workflow_id:
        return
    action = _TASK_ACTIONS.get(inst.task_status, inst.task_status.lower())
    events.record(
        s,
        project_id=inst.project_id,
        action=f"instance.{action}",
        resource_type="instance",
        resource_id=instance_id,
        outcome=outcome,
        detail=detail,
    )


@RECORDING_STEP
def fail_task(instance_id: str, workflow_id: str, task: str, message: str, details: str) -> None:
    """Record a fault and leave the instance in ``task`` (an error task or NONE)."""
    rt = current()
    now = utcnow()
    with rt.sessions.begin() as s:
        task_event(s, instance_id, workflow_id, "failed", message)
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


@RECORDING_STEP
def mark_deleted(instance_id: str, workflow_id: str) -> None:
    rt = current()
    with rt.sessions.begin() as s:
        inst = s.get(Instance, instance_id)
        if inst is None or inst.deleted or inst.task_workflow_id != workflow_id:
            return
        task_event(s, instance_id, workflow_id, "done")
        placement.release_port(s, inst)
        inst.deleted = True
        inst.deleted_at = utcnow()
        inst.configuration_id = None
        inst.task_status = TaskStatus.NONE.value
        inst.task_workflow_id = None
        inst.service_status = ServiceStatus.DELETED.value
        s.flush()  # the mark first: a metrics sample being written waits for it
        metric_history.forget(s, instance_id)


@DBOS.step()
def restart_needed(instance_id: str, values: dict[str, Any]) -> bool:
    """Whether moving the instance to ``values`` changes a restart-required parameter
    (compared with what the engine was last told)."""
    rt = current()
    with rt.sessions() as s:
        rec = records.load(s, instance_id, None)
        before = json.loads(rec.instance.parameters_json or "{}")
        rules = engines.catalog(rec.version.manager).parameter_rules(rec.version.version)
    return needs_restart(rules, before, values)


def describe(exc: BaseException) -> tuple[str, str]:
    """A fault's message (for users) and details (for operators)."""
    if isinstance(exc, CofferError):
        return exc.message, type(exc).__name__
    return f"unexpected error: {type(exc).__name__}", repr(exc)[:2000]
