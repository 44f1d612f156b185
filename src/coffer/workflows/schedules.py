"""Scheduled backups: DBOS runs ``scheduled_backup`` at each cron time of a schedule.

Each run takes a backup of the schedule's instance (skipped, and recorded as such, when
the instance is busy), then prunes the schedule's backups past its retention, children
before parents and never a backup a kept one depends on.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from dbos import DBOS
from sqlalchemy import select

from coffer.clock import utcnow
from coffer.contracts.api_v1 import BackupCreate
from coffer.db.models import Backup, BackupSchedule
from coffer.domain.retention import Kept, expired, parse_retention
from coffer.domain.states import BackupState
from coffer.errors import CofferError, NotFound
from coffer.services import backups
from coffer.services.backup_records import being_deleted
from coffer.workflows import backups as backup_wf
from coffer.workflows.observe import observed_workflow
from coffer.workflows.runtime import current

log = logging.getLogger("coffer.workflows.schedules")


def dbos_name(schedule_id: str, kind: str) -> str:
    return f"backup-schedule-{schedule_id}-{kind}"


@observed_workflow(name="backup.scheduled")
def scheduled_backup(at: datetime, context: Any) -> None:
    schedule_id, kind = str(context["schedule"]), str(context["kind"])
    run = begin_run(schedule_id, kind, at.isoformat())
    if run.get("gone"):
        remove(schedule_id)
        return
    if "start" in run:
        backup_wf.start_backup(*run["start"])
    doomed = prune(schedule_id)
    if doomed:
        backup_wf.start_delete(doomed[0], doomed[1])


@DBOS.step()
def begin_run(schedule_id: str, kind: str, at: str) -> dict[str, Any]:
    """Record and claim this run's backup: ``{"start": <backup workflow's arguments>}``,
    ``{}`` if it cannot run now (noted on the schedule), ``{"gone": True}`` if the
    schedule or its instance no longer exists."""
    rt = current()
    with rt.sessions() as s:
        sched = s.get(BackupSchedule, schedule_id)
        if sched is None:
            return {"gone": True}
        instance_id, project_id, name = sched.instance_id, sched.project_id, sched.name
    body = BackupCreate(
        name=f"{name} {kind} {at[:19]}", instance=instance_id, incremental=int(kind != "full")
    )
    run: dict[str, Any] = {}
    try:
        started = backups.record(rt, project_id, body, schedule_id=schedule_id)
        run["start"] = list(started)
        note = f"started {kind} backup {started.backup_id}"
    except NotFound:
        log.info("instance %s is gone: removing its backup schedule %s", instance_id, schedule_id)
        return {"gone": True}
    except CofferError as exc:
        note = f"skipped the {kind} backup: {exc.message}"
        log.warning("backup schedule %s: %s", schedule_id, note)
    with rt.sessions.begin() as s:
        sched = s.get(BackupSchedule, schedule_id)
        if sched is not None:
            sched.last_run, sched.last_run_at = note, utcnow()
    return run


@DBOS.step()
def prune(schedule_id: str) -> list[Any] | None:
    """Hand the schedule's expired backups to a delete workflow; its (id, order) or None."""
    rt = current()
    with rt.sessions.begin() as s:
        sched = s.get(BackupSchedule, schedule_id)
        if sched is None:
            return None
        family = (
            s.execute(
                select(Backup).where(
                    Backup.instance_id == sched.instance_id, Backup.deleted.is_(False)
                )
            )
            .scalars()
            .all()
        )
        keep = parse_retention(sched.retention)
        ids = expired(
            [
                Kept(b.id, b.parent_id, b.created, prunable=_prunable(b, schedule_id))
                for b in family
            ],
            now=utcnow(),
            keep=keep,
        )
        if not ids:
            return None
        by_id = {b.id: b for b in family}
        # mark_for_deletion takes parents first and returns children first
        workflow_id, order = backups.mark_for_deletion(s, [by_id[i] for i in reversed(ids)])
        return [workflow_id, order]


def _prunable(backup: Backup, schedule_id: str) -> bool:
    """Backups this schedule's retention owns: its own, ended, not already going away."""
    return (
        backup.schedule_id == schedule_id
        and backup.state in (BackupState.COMPLETED.value, BackupState.FAILED.value)
        and not being_deleted(backup)
    )


def register(schedule_id: str, full_cron: str, incremental_cron: str | None) -> None:
    """Create the DBOS schedules that time a Coffer schedule's runs."""
    for kind, cron in (("full", full_cron), ("incremental", incremental_cron)):
        if cron is not None:
            DBOS.create_schedule(
                schedule_name=dbos_name(schedule_id, kind),
                workflow_fn=scheduled_backup,
                schedule=cron,
                context={"schedule": schedule_id, "kind": kind},
            )


def remove(schedule_id: str) -> None:
    """Delete a schedule's DBOS schedules and its record (idempotent)."""
    for kind in ("full", "incremental"):
        if DBOS.get_schedule(dbos_name(schedule_id, kind)) is not None:
            DBOS.delete_schedule(dbos_name(schedule_id, kind))
    delete_record(schedule_id)


@DBOS.step()
def delete_record(schedule_id: str) -> None:
    rt = current()
    with rt.sessions.begin() as s:
        sched = s.get(BackupSchedule, schedule_id)
        if sched is not None:
            s.delete(sched)
