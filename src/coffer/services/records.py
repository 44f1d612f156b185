"""Loading an instance with what its views and specs need, scoped to a project."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from coffer.contracts.engine import InstanceSpec
from coffer.db.models import Configuration, Datastore, DatastoreVersion, Flavor, Host, Instance
from coffer.errors import NotFound
from coffer.services import log_archives


@dataclass(frozen=True)
class InstanceRecord:
    instance: Instance
    flavor: Flavor
    version: DatastoreVersion
    datastore: Datastore
    host: Host
    configuration: Configuration | None = None
    #: the earliest moment a point-in-time restore reaches (loaded for one instance only)
    restorable_from: datetime | None = None


def _query() -> Select[Instance, Flavor, DatastoreVersion, Datastore, Host, Configuration]:
    return (
        select(Instance, Flavor, DatastoreVersion, Datastore, Host, Configuration)
        .join(Flavor, Flavor.id == Instance.flavor_id)
        .join(DatastoreVersion, DatastoreVersion.id == Instance.datastore_version_id)
        .join(Datastore, Datastore.id == DatastoreVersion.datastore_id)
        .join(Host, Host.id == Instance.host_id)
        .outerjoin(Configuration, Configuration.id == Instance.configuration_id)
        .where(Instance.deleted.is_(False))
    )


def load(s: Session, instance_id: str, project_id: str | None) -> InstanceRecord:
    """The live instance; ``project_id=None`` means any project (admin and workflows)."""
    q = _query().where(Instance.id == instance_id)
    if project_id is not None:
        q = q.where(Instance.project_id == project_id)
    row = s.execute(q).first()
    if row is None:
        raise NotFound(f"Instance {instance_id} could not be found.")
    earliest = log_archives.restorable_from(s, row[0])
    return InstanceRecord(row[0], row[1], row[2], row[3], row[4], row[5], earliest)


def load_many(s: Session, project_id: str | None) -> list[InstanceRecord]:
    q = _query().order_by(Instance.created.desc(), Instance.id)
    if project_id is not None:
        q = q.where(Instance.project_id == project_id)
    return [InstanceRecord(r[0], r[1], r[2], r[3], r[4], r[5]) for r in s.execute(q).all()]


def spec_of(
    rec: InstanceRecord,
    *,
    flavor: Flavor | None = None,
    volume_gb: int | None = None,
    parameters: dict[str, Any] | None = None,
) -> InstanceSpec:
    """The agent-side spec; the keyword arguments override what an operation changes."""
    fl = flavor or rec.flavor
    return InstanceSpec(
        instance_id=rec.instance.id,
        engine=rec.version.manager,
        version=rec.version.version,
        port=rec.instance.port,
        bind_host=rec.host.address,
        ram_mb=fl.ram_mb,
        vcpus=fl.vcpus,
        volume_gb=volume_gb if volume_gb is not None else rec.instance.volume_gb,
        parameters=json.loads(rec.instance.parameters_json or "{}")
        if parameters is None
        else parameters,
    )
