"""What one scrape reads from the metadata database, in three short queries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coffer.db.models import Backup, Datastore, DatastoreVersion, Host, Instance
from coffer.domain.states import BackupState

__all__ = ["HostRow", "InstanceRow", "Snapshot", "read_snapshot"]


@dataclass(frozen=True)
class InstanceRow:
    id: str
    name: str
    project_id: str
    datastore: str
    volume_gb: int
    volume_used_bytes: int | None
    #: replication lag the agent last reported, seconds; None when unknown or not a replica
    lag_s: float | None


@dataclass(frozen=True)
class HostRow:
    id: str
    name: str
    #: naive UTC, as stored; None before its first heartbeat
    last_heartbeat: datetime | None


@dataclass(frozen=True)
class Snapshot:
    instances: list[InstanceRow]
    hosts: list[HostRow]
    #: instance id → when its latest COMPLETED (not deleted) backup completed, naive UTC
    last_backup: dict[str, datetime]


def read_snapshot(s: Session) -> Snapshot:
    """Every instance not deleted, every host, and the latest completed backups."""
    rows = s.execute(
        select(
            Instance.id,
            Instance.name,
            Instance.project_id,
            Datastore.name.label("datastore"),
            Instance.volume_gb,
            Instance.volume_used_bytes,
            Instance.replication_json,
        )
        .join(DatastoreVersion, DatastoreVersion.id == Instance.datastore_version_id)
        .join(Datastore, Datastore.id == DatastoreVersion.datastore_id)
        .where(Instance.deleted.is_(False))
        .order_by(Instance.created, Instance.id)
    ).all()
    instances = [
        InstanceRow(
            id=row.id,
            name=row.name,
            project_id=row.project_id,
            datastore=row.datastore,
            volume_gb=row.volume_gb,
            volume_used_bytes=row.volume_used_bytes,
            lag_s=replica_lag(row.replication_json),
        )
        for row in rows
    ]
    hosts = [
        HostRow(id=row.id, name=row.name, last_heartbeat=row.last_heartbeat)
        for row in s.execute(
            select(Host.id, Host.name, Host.last_heartbeat).order_by(Host.name)
        ).all()
    ]
    backups = s.execute(
        select(Backup.instance_id, func.max(Backup.updated))
        .where(
            Backup.state == BackupState.COMPLETED.value,
            Backup.deleted.is_(False),
            Backup.instance_id.is_not(None),
        )
        .group_by(Backup.instance_id)
    ).all()
    return Snapshot(
        instances=instances,
        hosts=hosts,
        last_backup={iid: at for iid, at in backups if iid is not None and at is not None},
    )


def replica_lag(replication_json: str | None) -> float | None:
    """The lag of a replica in the stored replication state (``agents._store_replication``),
    None for a primary, an unknown lag or unreadable text."""
    if not replication_json:
        return None
    try:
        state = json.loads(replication_json)
    except ValueError:
        return None
    if not isinstance(state, dict) or state.get("role") != "replica":
        return None
    lag = state.get("lag_s")
    return float(lag) if isinstance(lag, int | float) and not isinstance(lag, bool) else None
