"""Claiming an instance for an operation: one compare-and-set on ``task_status``."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from coffer.clock import utcnow
from coffer.db.models import Instance
from coffer.domain.states import ACTIONABLE_SERVICE, IDLE_TASKS, ServiceStatus, TaskStatus
from coffer.errors import UnprocessableEntity


def claim(
    s: Session,
    instance_id: str,
    *,
    to: TaskStatus,
    workflow_id: str,
    timeout_s: float,
    allowed: frozenset[TaskStatus] = IDLE_TASKS,
    need_service: frozenset[ServiceStatus] | None = ACTIONABLE_SERVICE,
) -> None:
    """Compare-and-set the task; 422 (Trove's message) when the instance is busy."""
    cond = [Instance.id == instance_id, Instance.deleted.is_(False)]
    cond.append(Instance.task_status.in_([t.value for t in allowed]))
    if need_service is not None:
        cond.append(Instance.service_status.in_([v.value for v in need_service]))
    now = utcnow()
    result = s.execute(
        update(Instance)
        .where(*cond)
        .values(
            task_status=to.value,
            task_workflow_id=workflow_id,
            task_deadline=now + timedelta(seconds=timeout_s),
            updated=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        inst = s.get(Instance, instance_id)
        state = f"task {inst.task_status}, service {inst.service_status}" if inst else "gone"
        raise UnprocessableEntity(
            f"Instance {instance_id} is not currently available for an action to be "
            f"performed ({state})."
        )
