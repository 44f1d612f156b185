"""Backup use cases: validate, record, and hand off to the backup workflows.

A backup is taken by the agent of the instance's host, which streams it (engine tool →
zstd → AES-256-GCM → object store) under ``<project>/<backup>/data`` with a data key of
its own; the key is kept sealed with the deployment master key in the record and in the
manifest written beside the data. The instance shows BACKUP while one runs (its task is
claimed like any other operation's).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from coffer import engines
from coffer.clock import isoformat, utcnow
from coffer.contracts.api_v1 import BackupCreate, RestorePointIn
from coffer.db.models import Backup, DatastoreVersion, Host, Instance
from coffer.domain.states import (
    IDLE_TASKS,
    RUNNING_BACKUPS,
    BackupState,
    TaskStatus,
    VerifyStatus,
)
from coffer.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    NotImplementedByDatastore,
    UnprocessableEntity,
)
from coffer.services import backup_strategies, clones, log_archives, quotas, records
from coffer.services.backup_records import (
    DELETE_PREFIX,
    BackupRecord,
    backup_query,
    being_deleted,
    chain_of,
    load,
    object_key,
    restore_payload,
)
from coffer.services.claims import claim
from coffer.services.runtime import Runtime
from coffer.storage.sealed import new_data_key
from coffer.workflows import backups as wf

_GB = 1024**3


def list_all(
    rt: Runtime,
    project_id: str | None,
    *,
    instance_id: str | None = None,
    datastore: str | None = None,
) -> list[BackupRecord]:
    """Newest first; ``project_id=None`` lists every project's (admin)."""
    q = backup_query(project_id).order_by(Backup.created.desc(), Backup.id)
    if instance_id is not None:
        q = q.where(Backup.instance_id == instance_id)
    with rt.sessions() as s:
        rows = s.execute(q).all()
    out = [BackupRecord(r[0], r[1], r[2]) for r in rows]
    if datastore is not None:
        out = [r for r in out if datastore in (r.datastore_name, r.version.datastore_id)]
    return out


def get(rt: Runtime, project_id: str | None, backup_id: str) -> BackupRecord:
    with rt.sessions() as s:
        return load(s, backup_id, project_id)


def create(rt: Runtime, project_id: str | None, body: BackupCreate) -> BackupRecord:
    """Validate, claim the instance (BACKUP), record the backup as NEW, start the workflow.

    ``project_id`` scopes the instance (None: an admin acting on any project's instance;
    the backup then belongs to the instance's project).
    """
    started = record(rt, project_id, body)
    # the reply shows the backup as recorded (NEW), whatever the workflow has done since
    recorded = get(rt, None, started.backup_id)
    wf.start_backup(*started)
    return recorded


class Started(NamedTuple):
    """The arguments of a recorded backup's workflow (``wf.start_backup(*started)``)."""

    workflow_id: str
    backup_id: str
    instance_id: str
    restart_pending: bool


def record(
    rt: Runtime, project_id: str | None, body: BackupCreate, *, schedule_id: str | None = None
) -> Started:
    """Everything ``create`` does but starting the workflow (scheduled backups start it
    from their own workflow)."""
    if body.restore_from is not None:
        raise BadRequest("restore_from (registering a backup taken elsewhere) is not supported")
    if body.swift_container is not None:
        backup_strategies.check_container(rt, body.swift_container)
    if body.storage_driver not in (None, "swift"):
        raise BadRequest(
            f"storage_driver {body.storage_driver!r} is not supported: backups go to the "
            "deployment's object store"
        )
    if not body.instance:
        raise BadRequest("Validation error: backup['instance'] is required")
    name = body.name.strip()
    if not name:
        raise BadRequest("Validation error: backup name must not be blank")
    backup_id = str(uuid.uuid4())
    workflow_id = f"backup-{backup_id}"
    store = rt.settings.store_config
    with rt.sessions.begin() as s:
        rec = records.load(s, body.instance, project_id)
        owner = rec.instance.project_id
        parent = _parent(s, rec.instance, body)
        if parent is not None and not engines.catalog(rec.version.manager).incremental_backups:
            raise NotImplementedByDatastore(
                f"incremental backups are not supported by datastore {rec.datastore.name}: "
                "take a full backup (omit parent_id and incremental)"
            )
        quotas.lock_project(s, owner)
        quotas.check(rt, s, owner, {"backups": 1})
        container = body.swift_container or backup_strategies.container_for(
            rt, s, owner, rec.instance.id
        )
        restart_pending = rec.instance.task_status == TaskStatus.RESTART_REQUIRED.value
        claim(
            s,
            rec.instance.id,
            to=TaskStatus.BACKUP,
            workflow_id=workflow_id,
            timeout_s=rt.settings.backup_timeout_s,
            allowed=IDLE_TASKS,
        )
        now = utcnow()
        s.add(
            Backup(
                id=backup_id,
                project_id=owner,
                instance_id=rec.instance.id,
                name=name,
                description=body.description or "",
                parent_id=parent.id if parent else None,
                datastore_version_id=rec.version.id,
                state=BackupState.NEW.value,
                workflow_id=workflow_id,
                location=object_key(owner, backup_id),
                store=_describe(store.kind, store.location, container),
                container=container,
                data_key_sealed=rt.sealer.seal(new_data_key()),
                positions_json="{}",
                counts_json="{}",
                counts_exact=False,
                schedule_id=schedule_id,
                progress_bytes=0,
                created=now,
                updated=now,
                deleted=False,
            )
        )
    return Started(workflow_id, backup_id, rec.instance.id, restart_pending)


def _describe(kind: str, location: str, container: str) -> str:
    return f"{kind}:{location}" if kind == "directory" else f"{kind}:{location}#{container}"


def _parent(s: Session, inst: Instance, body: BackupCreate) -> Backup | None:
    """The parent of an incremental: ``parent_id`` (a COMPLETED backup of the same
    instance), or with ``incremental: 1`` the instance's latest COMPLETED backup (none:
    a full backup, as Trove does)."""
    if body.parent_id:
        parent = s.get(Backup, body.parent_id)
        if parent is None or parent.deleted or parent.project_id != inst.project_id:
            raise NotFound(f"Backup {body.parent_id} could not be found.")
        if parent.instance_id != inst.id:
            raise BadRequest(
                f"backup {parent.id} is of another instance: an incremental needs a parent "
                f"taken from instance {inst.id}"
            )
        if parent.state != BackupState.COMPLETED.value or being_deleted(parent):
            state = "being deleted" if being_deleted(parent) else parent.state
            raise Conflict(f"Backup {parent.id} is {state}, not COMPLETED: it cannot be a parent.")
        return parent
    if body.incremental:
        return s.execute(
            select(Backup)
            .where(
                Backup.instance_id == inst.id,
                Backup.deleted.is_(False),
                Backup.state == BackupState.COMPLETED.value,
                Backup.workflow_id.not_like(f"{DELETE_PREFIX}%"),
            )
            .order_by(Backup.created.desc())
            .limit(1)
        ).scalar_one_or_none()
    return None


def delete(rt: Runtime, project_id: str | None, backup_id: str) -> None:
    """Delete a backup and, first, every incremental built on it (Trove's order)."""
    with rt.sessions.begin() as s:
        root = load(s, backup_id, project_id).backup
        doomed = [root, *_descendants(s, root.id)]
        workflow_id, ordered = mark_for_deletion(s, doomed)
    wf.start_delete(workflow_id, ordered)


def mark_for_deletion(s: Session, doomed: list[Backup]) -> tuple[str, list[str]]:
    """Hand ``doomed`` (parents before children) to a new delete workflow; returns its id
    and the order to delete in (children first). 422 if one is still running."""
    running = [b.id for b in doomed if b.state in {r.value for r in RUNNING_BACKUPS}]
    if running:
        raise UnprocessableEntity(
            f"Backup {', '.join(running)} is still running; delete it when it has ended."
        )
    workflow_id = f"{DELETE_PREFIX}{doomed[0].id}-{uuid.uuid4().hex[:8]}"
    for b in doomed:
        b.workflow_id = workflow_id
        b.updated = utcnow()
    return workflow_id, [b.id for b in reversed(doomed)]


def verify(rt: Runtime, project_id: str | None, backup_id: str) -> None:
    """Prove a COMPLETED backup restorable again (Coffer extension; every backup is also
    verified once right after it completes)."""
    busy = [VerifyStatus.PENDING.value, VerifyStatus.RUNNING.value]
    with rt.sessions.begin() as s:
        b = load(s, backup_id, project_id).backup
        if b.state != BackupState.COMPLETED.value:
            raise Conflict(f"Backup {b.id} is {b.state}: only COMPLETED backups can be verified.")
        claimed = s.execute(
            update(Backup)
            .where(
                Backup.id == b.id,
                Backup.verify_status.is_(None) | Backup.verify_status.not_in(busy),
            )
            .values(verify_status=VerifyStatus.PENDING.value)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if claimed != 1:
            raise UnprocessableEntity(f"Backup {b.id} is being verified already.")
    wf.start_verify(f"verify-{backup_id}-{uuid.uuid4().hex[:8]}", backup_id)


def fail_running(s: Session, instance_id: str, reason: str) -> None:
    """Mark the instance's running backups FAILED (Trove's reset_status does)."""
    _fail(s, Backup.instance_id == instance_id, reason)


def fail_workflow(s: Session, workflow_id: str, reason: str) -> None:
    """Mark the running backup of a workflow that will never run FAILED."""
    _fail(s, Backup.workflow_id == workflow_id, reason)


def _fail(s: Session, which: ColumnElement[bool], reason: str) -> None:
    s.execute(
        update(Backup)
        .where(which, Backup.state.in_([r.value for r in RUNNING_BACKUPS]))
        .values(state=BackupState.FAILED.value, fail_reason=reason, updated=utcnow())
    )


def _descendants(s: Session, backup_id: str) -> list[Backup]:
    out: list[Backup] = []
    frontier = [backup_id]
    while frontier:
        children = (
            s.execute(
                select(Backup).where(Backup.parent_id.in_(frontier), Backup.deleted.is_(False))
            )
            .scalars()
            .all()
        )
        out.extend(children)
        frontier = [c.id for c in children]
    return out


# -- restore ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RestorePlan:
    """What the create workflow needs to build an instance from a backup."""

    version: DatastoreVersion
    #: JSON-ready payload for the agent (holds data keys: travels sealed)
    payload: dict[str, Any]
    #: a clone: the source's host (the new instance must live there), and what to copy
    clone_host: Host | None = None
    clone: dict[str, Any] | None = None


def plan_restore(
    rt: Runtime, s: Session, project_id: str, point: RestorePointIn, volume_gb: int
) -> RestorePlan:
    """The chain (full first) behind ``point``, checked: every link COMPLETED (409
    otherwise, as Trove), and the data fits the volume (403 ``BackupTooLarge``); with a
    ``restore_time``, the roll-forward to it (400 outside the restorable window)."""
    target_time = _utc(point.restore_time)
    if point.instanceRef is not None and point.backupRef is None and target_time is None:
        version, host, copy = clones.plan_clone(s, project_id, point.instanceRef, volume_gb)
        return RestorePlan(version, {}, clone_host=host, clone=copy)
    if point.backupRef is not None and point.instanceRef is not None:
        raise BadRequest("restorePoint takes either backupRef or instanceRef, not both")
    if point.backupRef is not None:
        target = load(s, point.backupRef, project_id)
        chain = chain_of(s, target.backup)
    elif point.instanceRef is not None and target_time is not None:
        source = records.load(s, point.instanceRef, project_id).instance
        chain = _newest_chain_before(s, source, target_time)
        target = load(s, chain[-1].id, project_id)
    else:
        raise BadRequest(
            "restorePoint needs backupRef (a backup to restore) or instanceRef (an "
            "instance to clone, as of restore_time if given)"
        )
    raw = sum(b.raw_bytes or 0 for b in chain)
    if raw > volume_gb * _GB:
        raise Forbidden(
            f"Backup is too large for given flavor or volume. Backup size: {raw / _GB:.2f} GBs. "
            f"Volume size: {volume_gb} GBs."
        )
    payload = restore_payload(rt, chain)
    if target_time is not None:
        source_instance = s.get(Instance, target.backup.instance_id or "")
        if source_instance is None:
            raise BadRequest(f"backup {target.backup.id} has no source instance to roll forward")
        payload["recovery"] = log_archives.recovery_payload(
            rt, s, source_instance, target.backup, target_time
        )
    return RestorePlan(target.version, payload)


def _utc(moment: datetime | None) -> datetime | None:
    """``moment`` as naive UTC (the database's form); naive input is taken as UTC."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _newest_chain_before(s: Session, source: Instance, moment: datetime) -> list[Backup]:
    """The chain of ``source``'s newest backup completed at or before ``moment`` whose
    links are all COMPLETED (400 if it has none)."""
    candidates = s.scalars(
        select(Backup)
        .where(
            Backup.instance_id == source.id,
            Backup.deleted.is_(False),
            Backup.state == BackupState.COMPLETED.value,
            Backup.updated <= moment,
        )
        .order_by(Backup.updated.desc())
    ).all()
    for backup in candidates:
        try:
            return chain_of(s, backup)
        except Conflict:
            continue  # a link is being deleted: an older chain may do
    raise BadRequest(
        f"instance {source.id} has no completed backup before {isoformat(moment)}: a "
        "point-in-time restore starts from a backup taken before the moment"
    )
