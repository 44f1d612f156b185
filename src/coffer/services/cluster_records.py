"""Loading clusters with their members, scoped to a project, and a member's part in
its cluster (``Membership``, kept as JSON on the member's instance row)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from coffer.db.models import Cluster, Datastore, DatastoreVersion, Instance
from coffer.errors import NotFound
from coffer.services import records
from coffer.services.records import InstanceRecord

__all__ = ["ClusterKind", "ClusterRecord", "Membership", "load", "load_many", "membership"]


class ClusterKind(StrEnum):
    """How an engine's members form a cluster."""

    GALERA = "galera"
    REDIS = "redis"

    @classmethod
    def of(cls, manager: str) -> ClusterKind | None:
        return {"mariadb": cls.GALERA, "redis": cls.REDIS}.get(manager)


@dataclass(frozen=True)
class Membership:
    """A member's part: ``role`` is ``member`` (Galera), ``master`` or ``replica``
    (Redis); a Galera member's extra ports; a Redis member's bus port (None for members
    made before it was leased: client port + 10000); a Redis replica's master
    (``follows``, an instance id) and a Redis member's node id (once known)."""

    role: str
    gcomm_port: int | None = None
    ist_port: int | None = None
    sst_port: int | None = None
    bus_port: int | None = None
    follows: str | None = None
    node_id: str | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})


def membership(inst: Instance) -> Membership:
    return Membership(**json.loads(inst.cluster_json or '{"role": "member"}'))


@dataclass(frozen=True)
class ClusterRecord:
    cluster: Cluster
    version: DatastoreVersion
    datastore: Datastore
    #: the live members, oldest first
    members: tuple[InstanceRecord, ...]

    @property
    def kind(self) -> ClusterKind:
        kind = ClusterKind.of(self.version.manager)
        assert kind is not None
        return kind


def _clusters(project_id: str | None) -> Select[Cluster, DatastoreVersion, Datastore]:
    q = (
        select(Cluster, DatastoreVersion, Datastore)
        .join(DatastoreVersion, DatastoreVersion.id == Cluster.datastore_version_id)
        .join(Datastore, Datastore.id == DatastoreVersion.datastore_id)
        .where(Cluster.deleted.is_(False))
    )
    if project_id is not None:
        q = q.where(Cluster.project_id == project_id)
    return q


def load(s: Session, cluster_id: str, project_id: str | None) -> ClusterRecord:
    """The live cluster; ``project_id=None`` means any project (admin and workflows)."""
    row = s.execute(_clusters(project_id).where(Cluster.id == cluster_id)).first()
    if row is None:
        raise NotFound(f"Cluster {cluster_id} could not be found.")
    return ClusterRecord(row[0], row[1], row[2], _members(s, [cluster_id]).get(cluster_id, ()))


def load_many(s: Session, project_id: str | None) -> list[ClusterRecord]:
    rows = s.execute(_clusters(project_id).order_by(Cluster.created.desc(), Cluster.id)).all()
    members = _members(s, [r[0].id for r in rows])
    return [ClusterRecord(r[0], r[1], r[2], members.get(r[0].id, ())) for r in rows]


def _members(s: Session, cluster_ids: list[str]) -> dict[str, tuple[InstanceRecord, ...]]:
    if not cluster_ids:
        return {}
    out: dict[str, list[InstanceRecord]] = {}
    for rec in records.load_many(s, None, clusters=cluster_ids):
        assert rec.instance.cluster_id is not None
        out.setdefault(rec.instance.cluster_id, []).append(rec)
    return {
        cid: tuple(sorted(recs, key=lambda r: (r.instance.created, r.instance.name)))
        for cid, recs in out.items()
    }
