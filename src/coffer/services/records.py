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
    #: ids of the live instances replicating this one
    replicas: tuple[str, ...] = ()

    @property
    def replication_role(self) -> str | None:
        """ "replica", "primary" (it has replicas) or None (standalone)."""
        if self.instance.replica_of_id:
            return "replica"
        return "primary" if self.replicas else None


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
    replicas = tuple(replicas_of(s, [instance_id]).get(instance_id, ()))
    return InstanceRecord(row[0], row[1], row[2], row[3], row[4], row[5], earliest, replicas)


def load_many(
    s: Session,
    project_id: str | None,
    *,
    include_clustered: bool = True,
    clusters: list[str] | None = None,
) -> list[InstanceRecord]:
    """Live instances, newest first: of a project (None: all), without cluster members
    unless ``include_clustered``, or only the members of ``clusters``."""
    q = _query().order_by(Instance.created.desc(), Instance.id)
    if project_id is not None:
        q = q.where(Instance.project_id == project_id)
    if not include_clustered:
        q = q.where(Instance.cluster_id.is_(None))
    if clusters is not None:
        q = q.where(Instance.cluster_id.in_(clusters))
    rows = s.execute(q).all()
    replicas = replicas_of(s, [r[0].id for r in rows])
    return [
        InstanceRecord(
            r[0], r[1], r[2], r[3], r[4], r[5], replicas=tuple(replicas.get(r[0].id, ()))
        )
        for r in rows
    ]


def replicas_of(s: Session, instance_ids: list[str]) -> dict[str, list[str]]:
    """Source id → ids of its live replicas (oldest first), for the given sources."""
    out: dict[str, list[str]] = {}
    if not instance_ids:
        return out
    rows = s.execute(
        select(Instance.replica_of_id, Instance.id)
        .where(Instance.replica_of_id.in_(instance_ids), Instance.deleted.is_(False))
        .order_by(Instance.created, Instance.id)
    ).all()
    for source, replica in rows:
        out.setdefault(str(source), []).append(replica)
    return out


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
        replication_role=rec.replication_role,
        logs=tuple(json.loads(rec.instance.guest_logs_json or "[]")),
    )
