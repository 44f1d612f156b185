"""Backup records as the views, workflows and restores read them."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from coffer.db.models import Backup, Datastore, DatastoreVersion
from coffer.domain.states import BackupState
from coffer.errors import Conflict, NotFound
from coffer.services.runtime import Runtime
from coffer.storage import StoreConfig


def object_key(project_id: str, backup_id: str, name: str = "data") -> str:
    return f"{project_id}/{backup_id}/{name}"


@dataclass(frozen=True)
class BackupRecord:
    backup: Backup
    version: DatastoreVersion
    datastore_name: str


def backup_query(project_id: str | None) -> Select[Backup, DatastoreVersion, str]:
    q = (
        select(Backup, DatastoreVersion, Datastore.name)
        .join(DatastoreVersion, DatastoreVersion.id == Backup.datastore_version_id)
        .join(Datastore, Datastore.id == DatastoreVersion.datastore_id)
        .where(Backup.deleted.is_(False))
    )
    if project_id is not None:
        q = q.where(Backup.project_id == project_id)
    return q


def load(s: Session, backup_id: str, project_id: str | None) -> BackupRecord:
    row = s.execute(backup_query(project_id).where(Backup.id == backup_id)).first()
    if row is None:
        raise NotFound(f"Backup {backup_id} could not be found.")
    return BackupRecord(row[0], row[1], row[2])


def manifest(rec: BackupRecord) -> dict[str, Any]:
    """The manifest stored beside the data: enough to restore without the metadata
    database (with the deployment's master key)."""
    b = rec.backup
    return {
        "format": 1,
        "id": b.id,
        "project_id": b.project_id,
        "instance_id": b.instance_id,
        "parent_id": b.parent_id,
        "datastore": rec.datastore_name,
        "engine": rec.version.manager,
        "version": rec.version.version,
        "location": b.location,
        "container": b.container,
        "size": b.size_bytes,
        "raw_size": b.raw_bytes,
        "sha256": b.checksum,
        "positions": json.loads(b.positions_json or "{}"),
        "counts": json.loads(b.counts_json or "{}"),
        "counts_exact": b.counts_exact,
        "data_key_sealed": b.data_key_sealed,
        "created": b.created.isoformat(),
        "completed": b.updated.isoformat(),
    }


def chain_of(s: Session, backup: Backup) -> list[Backup]:
    """``backup`` and its ancestors, full first; every link must be COMPLETED (409)."""
    chain = [backup]
    while chain[0].parent_id is not None:
        parent = s.get(Backup, chain[0].parent_id)
        if parent is None or parent.deleted:
            raise Conflict(f"Backup {chain[0].id} has lost its parent {chain[0].parent_id}.")
        chain.insert(0, parent)
    for b in chain:
        if b.state != BackupState.COMPLETED.value or being_deleted(b):
            state = "being deleted" if being_deleted(b) else b.state
            raise Conflict(f"Backup {b.id} is {state}: only COMPLETED backups can be restored.")
    return chain


#: workflow ids of backup deletions start so: a backup carrying one is going away
DELETE_PREFIX = "delete-backup-"


def being_deleted(backup: Backup) -> bool:
    return (backup.workflow_id or "").startswith(DELETE_PREFIX)


def store_of(rt: Runtime, backup: Backup) -> StoreConfig:
    """The deployment's store, at the container the backup went to."""
    return rt.settings.store_config.model_copy(update={"container": backup.container})


def restore_payload(rt: Runtime, chain: list[Backup]) -> dict[str, Any]:
    """What an agent needs to restore ``chain`` (holds data keys: send it sealed)."""
    return {
        "backup_id": chain[-1].id,
        "chain": [
            {
                "id": b.id,
                "location": b.location,
                "checksum": b.checksum,
                "data_key": base64.b64encode(rt.sealer.open(b.data_key_sealed)).decode(),
                "store": store_of(rt, b).model_dump(),
            }
            for b in chain
        ],
    }
