"""Backup schedules (Coffer extension): validate, record, and time them with DBOS."""

from __future__ import annotations

import uuid

from croniter import croniter
from sqlalchemy import select

from coffer import engines
from coffer.clock import utcnow
from coffer.contracts.api_v1 import BackupScheduleCreate
from coffer.db.models import BackupSchedule
from coffer.domain.retention import parse_retention
from coffer.errors import BadRequest, NotFound, NotImplementedByDatastore
from coffer.services import records
from coffer.services.runtime import Runtime
from coffer.workflows import schedules as wf


def _check_cron(field: str, text: str) -> str:
    text = " ".join(text.split())
    if len(text.split()) not in (5, 6) or not croniter.is_valid(text, second_at_beginning=True):
        raise BadRequest(
            f"{field} {text!r} is not a cron expression: give 5 fields (minute hour day "
            "month weekday, e.g. '0 3 * * *' for 03:00 UTC daily) or 6 with seconds first"
        )
    return text


def create(rt: Runtime, project_id: str | None, body: BackupScheduleCreate) -> BackupSchedule:
    full = _check_cron("full", body.full)
    incremental = _check_cron("incremental", body.incremental) if body.incremental else None
    parse_retention(body.retention)
    schedule_id = str(uuid.uuid4())
    with rt.sessions.begin() as s:
        rec = records.load(s, body.instance_id, project_id)
        if incremental and not engines.catalog(rec.version.manager).incremental_backups:
            raise NotImplementedByDatastore(
                f"incremental backups are not supported by datastore {rec.datastore.name}: "
                "schedule full backups only"
            )
        s.add(
            BackupSchedule(
                id=schedule_id,
                project_id=rec.instance.project_id,
                instance_id=rec.instance.id,
                name=(body.name or f"{rec.instance.name} schedule").strip(),
                full_cron=full,
                incremental_cron=incremental,
                retention=body.retention.strip(),
                created=utcnow(),
            )
        )
    try:
        wf.register(schedule_id, full, incremental)
    except Exception:
        wf.remove(schedule_id)
        raise
    return get(rt, None, schedule_id)


def get(rt: Runtime, project_id: str | None, schedule_id: str) -> BackupSchedule:
    with rt.sessions() as s:
        sched = s.get(BackupSchedule, schedule_id)
    if sched is None or (project_id is not None and sched.project_id != project_id):
        raise NotFound(f"Backup schedule {schedule_id} could not be found.")
    return sched


def list_all(
    rt: Runtime, project_id: str | None, instance_id: str | None = None
) -> list[BackupSchedule]:
    q = select(BackupSchedule).order_by(BackupSchedule.created, BackupSchedule.id)
    if project_id is not None:
        q = q.where(BackupSchedule.project_id == project_id)
    if instance_id is not None:
        q = q.where(BackupSchedule.instance_id == instance_id)
    with rt.sessions() as s:
        return list(s.scalars(q).all())


def delete(rt: Runtime, project_id: str | None, schedule_id: str) -> None:
    """Stop the schedule; the backups it took stay (delete them like any other)."""
    get(rt, project_id, schedule_id)
    wf.remove(schedule_id)
