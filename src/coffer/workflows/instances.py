"""Instance workflows: create, delete, restart, resize flavor, resize volume.

Each is started under a deterministic workflow id stored on the instance, so starting it
again is a no-op and DBOS resumes it after a crash. Every wait is bounded by the task
deadline stored on the instance; a workflow always ends with the task back to NONE or in
an error task with a fault.
"""

from __future__ import annotations

import json

from dbos import DBOS, SetWorkflowID

from coffer.contracts.agent_v1 import CommandKind
from coffer.db.models import Instance
from coffer.domain.states import TaskStatus
from coffer.services import instance_logs
from coffer.workflows.backups import prune_logs
from coffer.workflows.observe import observed_workflow
from coffer.workflows.runtime import current
from coffer.workflows.steps import (
    await_command,
    describe,
    fail_task,
    finish_task,
    mark_deleted,
    restart_needed,
    send_command,
)


@observed_workflow(name="instance.create")
def create_instance(instance_id: str, sealed_extras: str) -> None:
    wid = f"create-{instance_id}"
    cid = f"{wid}:ensure"
    try:
        send_command(cid, instance_id, CommandKind.ENSURE.value, {}, sealed_extras)
        observed = await_command(cid, instance_id)
        finish_task(instance_id, wid, observed=observed)
    except Exception as exc:
        message, details = describe(exc)
        fail_task(
            instance_id, wid, TaskStatus.BUILDING_ERROR.value, f"create failed: {message}", details
        )


@observed_workflow(name="instance.delete")
def delete_instance(wid: str, instance_id: str) -> None:
    cid = f"{wid}:remove"
    try:
        send_command(cid, instance_id, CommandKind.DELETE.value, {})
        await_command(cid, instance_id)
        release_source(wid, instance_id)
        discard_published_logs(instance_id)
        mark_deleted(instance_id, wid)
        prune_logs(instance_id)
    except Exception as exc:
        message, details = describe(exc)
        fail_task(
            instance_id, wid, TaskStatus.DELETING_ERROR.value, f"delete failed: {message}", details
        )


def release_source(wid: str, instance_id: str) -> None:
    """A deleted replica's source drops what it kept for it (e.g. a replication slot,
    which would otherwise hold WAL forever); a failure is logged, not fatal."""
    source_id = replica_source(instance_id)
    if source_id is None:
        return
    cid = f"{wid}:release-source"
    try:
        args = {"replica_id": instance_id}
        send_command(cid, source_id, CommandKind.REPLICATION_CLOSE.value, {}, args=args)
        await_command(cid, instance_id)
    except Exception as exc:
        DBOS.logger.warning("source %s kept what it held for %s: %s", source_id, instance_id, exc)


@DBOS.step()
def discard_published_logs(instance_id: str) -> None:
    """Remove what was published of the instance's logs before it is marked deleted (no
    route reaches them afterwards; none publishes meanwhile: it is DELETING); a failure
    is logged, not fatal."""
    try:
        instance_logs.remove_published(current(), instance_id)
    except Exception as exc:
        DBOS.logger.warning("published logs of %s were not removed: %s", instance_id, exc)


@DBOS.step()
def replica_source(instance_id: str) -> str | None:
    rt = current()
    with rt.sessions() as s:
        inst = s.get(Instance, instance_id)
        return inst.replica_of_id if inst is not None else None


@observed_workflow(name="instance.restart")
def restart_instance(workflow_id: str, instance_id: str) -> None:
    _simple(workflow_id, instance_id, CommandKind.RESTART, {}, "restart")


@observed_workflow(name="instance.resize_flavor")
def resize_flavor(workflow_id: str, instance_id: str, flavor_id: str) -> None:
    _simple(workflow_id, instance_id, CommandKind.RECONFIGURE, {"flavor_id": flavor_id}, "resize")


@observed_workflow(name="instance.resize_volume")
def resize_volume(workflow_id: str, instance_id: str, size_gb: int) -> None:
    _simple(
        workflow_id, instance_id, CommandKind.RESIZE_VOLUME, {"volume_gb": size_gb}, "resize volume"
    )


def _simple(
    workflow_id: str, instance_id: str, kind: CommandKind, extra: dict[str, object], what: str
) -> None:
    """Send one command, wait, and apply what changed; on failure record a fault."""
    cid = f"{workflow_id}:{kind.value}"
    try:
        send_command(cid, instance_id, kind.value, dict(extra))
        observed = await_command(cid, instance_id)
        finish_task(
            instance_id,
            workflow_id,
            observed=observed,
            flavor_id=str(extra["flavor_id"]) if "flavor_id" in extra else None,
            volume_gb=int(str(extra["volume_gb"])) if "volume_gb" in extra else None,
        )
    except Exception as exc:
        message, details = describe(exc)
        fail_task(
            instance_id, workflow_id, TaskStatus.NONE.value, f"{what} failed: {message}", details
        )


@observed_workflow(name="instance.apply_configuration")
def apply_configuration(
    workflow_id: str, instance_id: str, values_json: str, pending_restart: bool
) -> None:
    """Render the new values and apply the live ones; RESTART_REQUIRED if others changed
    (or a restart was already pending when the instance was claimed)."""
    values = json.loads(values_json)
    cid = f"{workflow_id}:apply"
    try:
        restart = pending_restart or restart_needed(instance_id, values)
        send_command(cid, instance_id, CommandKind.APPLY_PARAMETERS.value, {"parameters": values})
        observed = await_command(cid, instance_id)
        finish_task(
            instance_id, workflow_id, observed=observed, parameters=values, restart_required=restart
        )
    except Exception as exc:
        message, details = describe(exc)
        fail_task(
            instance_id,
            workflow_id,
            TaskStatus.NONE.value,
            f"applying configuration failed: {message}",
            details,
        )


def start_apply_configuration(
    workflow_id: str, instance_id: str, values_json: str, pending_restart: bool
) -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(
            apply_configuration, workflow_id, instance_id, values_json, pending_restart
        )


def start_create(instance_id: str, sealed_extras: str) -> None:
    with SetWorkflowID(f"create-{instance_id}"):
        DBOS.start_workflow(create_instance, instance_id, sealed_extras)


def start_delete(workflow_id: str, instance_id: str) -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(delete_instance, workflow_id, instance_id)


def start_restart(workflow_id: str, instance_id: str) -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(restart_instance, workflow_id, instance_id)


def start_resize_flavor(workflow_id: str, instance_id: str, flavor_id: str) -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(resize_flavor, workflow_id, instance_id, flavor_id)


def start_resize_volume(workflow_id: str, instance_id: str, size_gb: int) -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(resize_volume, workflow_id, instance_id, size_gb)


def cancel(workflow_id: str) -> None:
    DBOS.cancel_workflow(workflow_id)


def exists(workflow_id: str) -> bool:
    return DBOS.get_workflow_status(workflow_id) is not None
