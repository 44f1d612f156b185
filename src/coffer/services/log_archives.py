"""Shipped change logs of instances (point-in-time recovery): where agents ship them, the
restorable window, and the plan of a restore to a moment.

An instance's log is shipped (by its agent, ``agent.logship``) once it has a completed
full backup: the first time its agent asks, it gets a log key (random, kept sealed with
the master key on the instance) and the deployment's store container; objects live under
``<project>/<instance>/logs/`` (``storage.logstore``). The restorable window runs from
the completion of the oldest completed full backup to ``Instance.restorable_until``,
which heartbeats advance.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coffer import engines
from coffer.clock import isoformat, utcnow
from coffer.db.models import Backup, DatastoreVersion, Instance
from coffer.domain.states import BackupState
from coffer.errors import BadRequest
from coffer.services.backup_records import DELETE_PREFIX
from coffer.services.runtime import Runtime
from coffer.storage import StoreConfig, open_store
from coffer.storage.logstore import LogStore
from coffer.storage.sealed import new_data_key

__all__ = [
    "archive_targets",
    "log_prefix",
    "log_store",
    "oldest_full",
    "prune",
    "recovery_payload",
    "restorable_from",
]


def log_prefix(instance: Instance) -> str:
    return f"{instance.project_id}/{instance.id}/logs"


def _completed(instance_id: str) -> Any:
    return select(Backup).where(
        Backup.instance_id == instance_id,
        Backup.deleted.is_(False),
        Backup.state == BackupState.COMPLETED.value,
        (Backup.workflow_id.is_(None)) | (~Backup.workflow_id.startswith(DELETE_PREFIX)),
    )


def oldest_full(s: Session, instance_id: str) -> Backup | None:
    """The instance's oldest completed full backup that is not being deleted."""
    q = _completed(instance_id).where(Backup.parent_id.is_(None)).order_by(Backup.updated)
    return s.scalars(q.limit(1)).first()


def restorable_from(s: Session, instance: Instance) -> datetime | None:
    """The earliest moment a point-in-time restore of ``instance`` can reach (None when
    its log is not shipped)."""
    if instance.log_key_sealed is None or instance.restorable_until is None:
        return None
    oldest = oldest_full(s, instance.id)
    return oldest.updated if oldest is not None else None


def _store(rt: Runtime, instance: Instance) -> StoreConfig:
    container = instance.log_container or rt.settings.store_config.container
    return rt.settings.store_config.model_copy(update={"container": container})


def log_store(rt: Runtime, instance: Instance) -> LogStore:
    """The instance's shipped log, as the control plane reads or prunes it."""
    key = rt.sealer.open(instance.log_key_sealed or "")
    return LogStore(open_store(_store(rt, instance)), log_prefix(instance), key, instance.id)


def archive_targets(rt: Runtime, host_id: str, instance_ids: list[str]) -> dict[str, Any]:
    """For each of the host's live instances in ``instance_ids`` whose engine ships a log
    and which has a completed full backup: where and with which key to ship it (the
    key is made on first use)."""
    out: dict[str, Any] = {}
    with rt.sessions.begin() as s:
        rows = s.execute(
            select(Instance, DatastoreVersion.manager)
            .join(DatastoreVersion, DatastoreVersion.id == Instance.datastore_version_id)
            .where(
                Instance.host_id == host_id,
                Instance.deleted.is_(False),
                Instance.id.in_(instance_ids),
            )
        ).all()
        for instance, manager in rows:
            if not engines.catalog(manager).point_in_time_recovery:
                continue
            oldest = oldest_full(s, instance.id)
            if oldest is None:
                continue
            if instance.log_key_sealed is None:
                _make_key(rt, s, instance)
            out[instance.id] = {
                "store": _store(rt, instance).model_dump(),
                "prefix": log_prefix(instance),
                "key": base64.b64encode(rt.sealer.open(instance.log_key_sealed or "")).decode(),
                "since": json.loads(oldest.positions_json or "{}"),
            }
    return out


def _make_key(rt: Runtime, s: Session, instance: Instance) -> None:
    """Give ``instance`` a log key unless a concurrent request just did."""
    s.execute(
        update(Instance)
        .where(Instance.id == instance.id, Instance.log_key_sealed.is_(None))
        .values(
            log_key_sealed=rt.sealer.seal(new_data_key()),
            log_container=rt.settings.store_config.container,
        )
    )
    s.refresh(instance)


def prune(rt: Runtime, instance_id: str) -> None:
    """Drop shipped log no restore can use any more: files before the oldest full
    backup's first one; all of it (and the key and window with it) once the instance has
    no full backup left, so that a later full backup starts a new window."""
    with rt.sessions() as s:
        instance = s.get(Instance, instance_id)
        if instance is None or instance.log_key_sealed is None:
            return
        manager = s.scalars(
            select(DatastoreVersion.manager).where(
                DatastoreVersion.id == instance.datastore_version_id
            )
        ).one()
        oldest = oldest_full(s, instance_id)
        logs = log_store(rt, instance)
        first = (
            engines.catalog(manager).log_start(json.loads(oldest.positions_json or "{}"))
            if oldest is not None
            else None
        )
    if oldest is not None:
        if first:
            logs.prune_before(first)
        return
    logs.store.purge(logs.prefix)
    with rt.sessions.begin() as s:
        s.execute(
            update(Instance)
            .where(Instance.id == instance_id)
            .values(log_key_sealed=None, log_container=None, restorable_until=None)
        )


def advance(s: Session, instance_id: str, until: float) -> None:
    """Move ``restorable_until`` forward to ``until`` (UNIX time); never back."""
    moment = datetime.fromtimestamp(until, UTC).replace(tzinfo=None)
    s.execute(
        update(Instance)
        .where(
            Instance.id == instance_id,
            Instance.log_key_sealed.is_not(None),
            (Instance.restorable_until.is_(None)) | (Instance.restorable_until < moment),
        )
        .values(restorable_until=moment)
    )


def recovery_payload(
    rt: Runtime, s: Session, source: Instance, backup: Backup, target: datetime
) -> dict[str, Any]:
    """What an agent needs to roll a restore of ``backup`` (of ``source``) forward to
    ``target`` (naive UTC), checked against the restorable window (400 naming it)."""
    manager = s.scalars(
        select(DatastoreVersion.manager).where(DatastoreVersion.id == source.datastore_version_id)
    ).one()
    if not engines.catalog(manager).point_in_time_recovery:
        raise BadRequest(
            f"{manager} has no change log to replay: its instances restore only to a backup "
            "(drop 'restore_time')"
        )
    if target > utcnow():
        raise BadRequest(f"restore_time {isoformat(target)} is in the future")
    if target < backup.updated:
        raise BadRequest(
            f"restore_time {isoformat(target)} is before backup {backup.id} completed "
            f"({isoformat(backup.updated)}); choose a later time or an earlier backup"
        )
    if source.log_key_sealed is None or source.restorable_until is None:
        raise BadRequest(
            f"instance {source.id} has no shipped change log yet (shipping starts with its "
            "first completed full backup); restore a backup without 'restore_time'"
        )
    if target > source.restorable_until:
        raise BadRequest(
            f"restore_time {isoformat(target)} is after the latest restorable time "
            f"{isoformat(source.restorable_until)} of instance {source.id}"
        )
    return {
        "target": target.replace(tzinfo=UTC).isoformat(),
        "instance_id": source.id,
        "store": _store(rt, source).model_dump(),
        "prefix": log_prefix(source),
        "key": base64.b64encode(rt.sealer.open(source.log_key_sealed)).decode(),
    }
