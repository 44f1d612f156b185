"""Start-up mending: no instance may stay claimed by a workflow that does not exist.

DBOS resumes the workflows it knows. The only gap is a claim committed just before its
workflow was started (a crash in between): such a task is failed visibly, except a
delete, which is simply started again (it needs nothing but the instance id).
"""

from __future__ import annotations

import logging
import uuid

from dbos import DBOS
from sqlalchemy import select

from coffer.clock import utcnow
from coffer.db.models import Instance
from coffer.domain.states import TaskStatus
from coffer.services import backups
from coffer.services.runtime import Runtime
from coffer.workflows import instances as wf

log = logging.getLogger("coffer.recovery")

_ACTIVE = (
    TaskStatus.BUILDING,
    TaskStatus.DELETING,
    TaskStatus.REBOOTING,
    TaskStatus.RESIZING,
    TaskStatus.UPDATING,
    TaskStatus.BACKUP,
)
_FINISHED = {"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}


def mend_orphaned_tasks(rt: Runtime) -> None:
    with rt.sessions() as s:
        claimed = [
            (i.id, i.task_status, i.task_workflow_id)
            for i in s.scalars(
                select(Instance).where(
                    Instance.deleted.is_(False),
                    Instance.task_status.in_([t.value for t in _ACTIVE]),
                )
            )
        ]
    for instance_id, task, workflow_id in claimed:
        status = DBOS.get_workflow_status(workflow_id) if workflow_id else None
        if status is not None and status.status not in _FINISHED:
            continue
        if task == TaskStatus.DELETING.value:
            new_id = f"delete-{instance_id}-{uuid.uuid4().hex[:8]}"
            _set_task(rt, instance_id, workflow_id, TaskStatus.DELETING, new_id, None)
            wf.start_delete(new_id, instance_id)
            log.info("restarted the delete of %s", instance_id)
            continue
        after = TaskStatus.BUILDING_ERROR if task == TaskStatus.BUILDING.value else TaskStatus.NONE
        if task == TaskStatus.BACKUP.value and workflow_id:
            with rt.sessions.begin() as s:
                backups.fail_workflow(s, workflow_id, "interrupted before it started; retry")
        _set_task(
            rt,
            instance_id,
            workflow_id,
            after,
            None,
            "the operation was interrupted before it started; please retry",
        )
        log.warning("instance %s: task %s had no workflow; now %s", instance_id, task, after)


def _set_task(
    rt: Runtime,
    instance_id: str,
    old_wid: str | None,
    task: TaskStatus,
    new_wid: str | None,
    fault: str | None,
) -> None:
    with rt.sessions.begin() as s:
        inst = s.get(Instance, instance_id)
        if inst is None or inst.task_workflow_id != old_wid:
            return
        inst.task_status = task.value
        inst.task_workflow_id = new_wid
        inst.updated = utcnow()
        if fault:
            inst.fault_message = fault
            inst.fault_details = "recovery"
            inst.fault_created = utcnow()
