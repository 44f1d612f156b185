"""Clusters (Trove's cluster API): create, grow, shrink, restart, reset-status, delete.

A cluster is a row of its own and 3+ ordinary instances (``cluster_id`` set), placed
on as many hosts as there are. MariaDB clusters are Galera clusters (every member takes
writes; 3+ members so that losing one keeps quorum); Redis clusters are Redis Clusters
(3+ masters sharing the 16384 slots, each with any number of replicas). Every request is
validated whole before anything is written; the durable workflow started afterwards
(``coffer.workflows.clusters``) owns the cluster's task until it is NONE again.

Members are created, resized and deleted only through their cluster (as in Trove); a
member is hidden from the project's plain instance list unless ``include_clustered``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from coffer.clock import utcnow
from coffer.contracts.api_v1 import ClusterAction, ClusterCreate, ClusterMemberIn
from coffer.db.models import Cluster, DatastoreVersion, Flavor, Host, Instance
from coffer.domain.states import (
    ERROR_TASKS,
    IDLE_TASKS,
    ClusterTask,
    ServiceStatus,
    TaskStatus,
)
from coffer.errors import BadRequest, NotImplementedByDatastore, UnprocessableEntity
from coffer.security import new_password
from coffer.services import catalog, placement, quotas
from coffer.services.auth import Principal
from coffer.services.cluster_records import (
    ClusterKind,
    ClusterRecord,
    Membership,
    load,
    load_many,
    membership,
)
from coffer.services.records import InstanceRecord
from coffer.services.runtime import Runtime
from coffer.workflows import clusters as wf

__all__ = [
    "act",
    "create",
    "delete",
    "get",
    "list_all",
    "refuse_member",
    "reset_status",
    "restart",
]

#: fewest members (Galera) or masters (Redis): one may fail and the rest keep quorum
MIN_MEMBERS = 3
#: most members a single request adds
MAX_NEW_MEMBERS = 16
_GALERA_PORTS = ("gcomm", "ist", "sst")
_ACTIONS = (
    "grow",
    "shrink",
    "restart",
    "reset_status",
    "upgrade",
    "configuration_attach",
    "configuration_detach",
    "add_shard",
)


@dataclass(frozen=True)
class _NewMember:
    name: str
    role: str


def create(rt: Runtime, project_id: str, body: ClusterCreate) -> str:
    """Validate, check quota, record the cluster and its members, start its workflow;
    the cluster's id."""
    from coffer.services.instances import validate_name

    name = validate_name(body.name)
    if body.locality:
        raise BadRequest("locality is not supported: Coffer spreads members over hosts itself")
    if body.extended_properties:
        raise BadRequest("extended_properties are not supported (they are MongoDB's)")
    if body.configuration:
        raise BadRequest(
            "configuration groups cannot be attached to clusters yet: create the cluster "
            "without one"
        )
    if not body.datastore.type or not body.datastore.version:
        raise BadRequest("Validation error: cluster['datastore'] needs both type and version")
    cluster_id = str(uuid.uuid4())
    workflow_id = f"cluster-create-{cluster_id}"
    with rt.sessions.begin() as s:
        version = catalog.resolve_version(s, body.datastore.type, body.datastore.version).version
        kind = _kind(version)
        flavor, size = _uniform(rt, s, body.instances)
        roles = _roles(kind, body.instances)
        masters = roles.count("master") if kind is ClusterKind.REDIS else len(roles)
        if masters < MIN_MEMBERS:
            what = "masters" if kind is ClusterKind.REDIS else "members"
            raise BadRequest(
                f"a {kind.value} cluster needs at least {MIN_MEMBERS} {what} (so that it keeps "
                f"quorum when one fails); {masters} given"
            )
        new = [
            _NewMember(member.name or f"{name}-member-{index}", role)
            for index, (member, role) in enumerate(zip(body.instances, roles, strict=True), 1)
        ]
        for member in new:
            validate_name(member.name)
        timeout_s = rt.settings.create_timeout_s * len(new)
        now = utcnow()
        s.add(
            Cluster(
                id=cluster_id,
                project_id=project_id,
                name=name,
                datastore_version_id=version.id,
                task_status=ClusterTask.BUILDING.value,
                task_workflow_id=workflow_id,
                task_deadline=now + timedelta(seconds=timeout_s),
                secret_sealed=rt.sealer.seal(new_password().encode()),
                created=now,
                updated=now,
                deleted=False,
            )
        )
        _add_members(rt, s, project_id, cluster_id, version, kind, flavor, size, new, workflow_id)
    wf.start(wf.create_cluster, workflow_id, cluster_id)
    return cluster_id


def get(rt: Runtime, project_id: str | None, cluster_id: str) -> ClusterRecord:
    """The live cluster with its members (``project_id=None``: any project)."""
    with rt.sessions() as s:
        return load(s, cluster_id, project_id)


def list_all(rt: Runtime, project_id: str | None) -> list[ClusterRecord]:
    """The live clusters, newest first (``project_id=None``: every project's)."""
    with rt.sessions() as s:
        return load_many(s, project_id)


def act(
    rt: Runtime, principal: Principal, project_id: str | None, cluster_id: str, body: ClusterAction
) -> None:
    """One cluster action (the body names exactly one)."""
    chosen = [k for k in _ACTIONS if getattr(body, k) is not None]
    if len(chosen) != 1:
        raise BadRequest(
            "Validation error: the action body must hold exactly one of grow, shrink, restart, "
            "reset-status"
        )
    action = chosen[0]
    if action == "reset_status":
        principal.require_admin()
        reset_status(rt, project_id, cluster_id)
    elif action == "grow":
        assert body.grow is not None
        _grow(rt, project_id, cluster_id, body.grow)
    elif action == "shrink":
        assert body.shrink is not None
        _shrink(rt, project_id, cluster_id, [item.id for item in body.shrink])
    elif action == "restart":
        restart(rt, project_id, cluster_id)
    else:
        raise BadRequest(f"{action.replace('_', '-')} is not supported for clusters")


def delete(rt: Runtime, project_id: str | None, cluster_id: str) -> None:
    """Delete the cluster and every member (allowed while no other task runs)."""
    workflow_id = f"cluster-delete-{cluster_id}-{uuid.uuid4().hex[:8]}"
    with rt.sessions.begin() as s:
        rec = load(s, cluster_id, project_id)
        if rec.cluster.task_status == ClusterTask.DELETING.value:
            return  # already on its way (Heat sends delete again)
        members = [m.instance.id for m in rec.members]
        _claim(rt, s, rec, ClusterTask.DELETING, workflow_id)
        _claim_members(s, members, TaskStatus.DELETING, workflow_id, rec, any_task=True)
    wf.start(wf.delete_cluster, workflow_id, cluster_id)


def refuse_member(inst: Instance, what: str) -> None:
    """501 for an instance operation a cluster member may only get through its cluster."""
    if inst.cluster_id is not None:
        raise NotImplementedByDatastore(
            f"Instance {inst.id} is a member of cluster {inst.cluster_id}: {what} it through "
            "its cluster"
        )


# -- actions -------------------------------------------------------------------------------


def _grow(
    rt: Runtime, project_id: str | None, cluster_id: str, grow: list[ClusterMemberIn]
) -> None:
    from coffer.services.instances import validate_name

    if len(grow) > MAX_NEW_MEMBERS:
        raise BadRequest(f"grow adds at most {MAX_NEW_MEMBERS} members at a time")
    workflow_id = f"cluster-grow-{cluster_id}-{uuid.uuid4().hex[:8]}"
    with rt.sessions.begin() as s:
        rec = load(s, cluster_id, project_id)
        kind = rec.kind
        flavor, size = _uniform(rt, s, grow)
        first = rec.members[0] if rec.members else None
        if first is not None and (first.flavor.id, first.instance.volume_gb) != (flavor.id, size):
            raise BadRequest(
                f"new members must have the cluster's flavor ({first.flavor.id}) and volume "
                f"size ({first.instance.volume_gb} GB)"
            )
        roles = _roles(kind, grow)
        taken = {m.instance.name for m in rec.members}
        new: list[_NewMember] = []
        index = len(rec.members)
        for member, role in zip(grow, roles, strict=True):
            if member.name:
                name = validate_name(member.name)
            else:
                index += 1
                while f"{rec.cluster.name}-member-{index}" in taken:
                    index += 1
                name = f"{rec.cluster.name}-member-{index}"
            taken.add(name)
            new.append(_NewMember(name, role))
        _claim(rt, s, rec, ClusterTask.GROWING_CLUSTER, workflow_id, per_member=len(new))
        _add_members(
            rt,
            s,
            rec.cluster.project_id,
            cluster_id,
            rec.version,
            kind,
            flavor,
            size,
            new,
            workflow_id,
            existing=rec.members,
        )
    wf.start(wf.grow_cluster, workflow_id, cluster_id)


def _shrink(rt: Runtime, project_id: str | None, cluster_id: str, ids: list[str]) -> None:
    workflow_id = f"cluster-shrink-{cluster_id}-{uuid.uuid4().hex[:8]}"
    with rt.sessions.begin() as s:
        rec = load(s, cluster_id, project_id)
        by_id = {m.instance.id: m for m in rec.members}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise BadRequest(
                f"instance {unknown[0]} is not a member of cluster {cluster_id}: shrink takes "
                "the ids of the members to remove"
            )
        if len(set(ids)) != len(ids):
            raise BadRequest("the same member is listed twice")
        gone = set(ids)
        stay = [m for m in rec.members if m.instance.id not in gone]
        if rec.kind is ClusterKind.GALERA:
            if len(stay) < MIN_MEMBERS:
                raise BadRequest(
                    f"shrinking cluster {cluster_id} to {len(stay)} members would lose quorum "
                    f"protection: a Galera cluster keeps at least {MIN_MEMBERS} members"
                )
        else:
            masters = [m for m in stay if membership(m.instance).role == "master"]
            if len(masters) < MIN_MEMBERS:
                raise BadRequest(
                    f"shrinking cluster {cluster_id} would leave {len(masters)} masters: a Redis "
                    f"cluster keeps at least {MIN_MEMBERS} masters"
                )
            _refuse_orphans(rec, gone)
        _claim(rt, s, rec, ClusterTask.SHRINKING_CLUSTER, workflow_id)
        _claim_members(s, ids, TaskStatus.DELETING, workflow_id, rec)
    wf.start(wf.shrink_cluster, workflow_id, cluster_id)


def _refuse_orphans(rec: ClusterRecord, gone: set[str]) -> None:
    """A Redis master may only go with its replicas (they would have nothing to follow)."""
    for member in rec.members:
        inst = member.instance
        follows = membership(inst).follows
        if inst.id not in gone and follows in gone:
            raise BadRequest(
                f"master {follows} still has replica {inst.id}: shrink the replica along with "
                "its master"
            )


def restart(rt: Runtime, project_id: str | None, cluster_id: str) -> None:
    """Restart every member in turn (a Galera cluster that is down: recover it)."""
    workflow_id = f"cluster-restart-{cluster_id}-{uuid.uuid4().hex[:8]}"
    with rt.sessions.begin() as s:
        rec = load(s, cluster_id, project_id)
        _claim(rt, s, rec, ClusterTask.RESTARTING_CLUSTER, workflow_id)
        members = [m.instance.id for m in rec.members]
        _claim_members(s, members, TaskStatus.REBOOTING, workflow_id, rec)
    wf.start(wf.restart_cluster, workflow_id, cluster_id)


def reset_status(rt: Runtime, project_id: str | None, cluster_id: str) -> None:
    """Admin: forget the cluster's task (cancelling its workflow) and its members' tasks."""
    with rt.sessions.begin() as s:
        rec = load(s, cluster_id, project_id)
        workflow_id = rec.cluster.task_workflow_id
        now = utcnow()
        rec.cluster.task_status = ClusterTask.NONE.value
        rec.cluster.task_workflow_id = None
        rec.cluster.task_deadline = None
        rec.cluster.updated = now
        for member in rec.members:
            inst = member.instance
            if inst.task_workflow_id is not None and inst.task_workflow_id == workflow_id:
                inst.task_status = TaskStatus.NONE.value
                inst.task_workflow_id = None
                inst.task_deadline = None
                inst.service_status = ServiceStatus.UNKNOWN.value
                inst.updated = now
    if workflow_id:
        wf.cancel(workflow_id)


# -- helpers -------------------------------------------------------------------------------


def _kind(version: DatastoreVersion) -> ClusterKind:
    kind = ClusterKind.of(version.manager)
    if kind is None:
        raise NotImplementedByDatastore(
            f"Clusters are not supported for {version.manager}: MariaDB (Galera) and Redis "
            "(Redis Cluster) are"
        )
    return kind


def _uniform(rt: Runtime, s: Session, members: list[ClusterMemberIn]) -> tuple[Flavor, int]:
    """The members' one flavor and volume size (a cluster's members are alike)."""
    from coffer.services.instances import volume_size

    flavors: set[str] = set()
    sizes: set[int] = set()
    found: Flavor | None = None
    for member in members:
        flavor = catalog.find_flavor(s, member.flavorRef)
        if flavor is None:
            raise BadRequest(f"Flavor {member.flavorRef} could not be found.")
        found = flavor
        flavors.add(flavor.id)
        sizes.add(volume_size(member.volume, rt.settings.max_volume_gb))
    if len(flavors) > 1 or len(sizes) > 1:
        raise BadRequest("every member of a cluster must have the same flavor and volume size")
    assert found is not None
    return found, sizes.pop()


def _roles(kind: ClusterKind, members: list[ClusterMemberIn]) -> list[str]:
    roles = []
    for member in members:
        if kind is ClusterKind.GALERA:
            if member.type not in (None, "member"):
                raise BadRequest(
                    f"member type {member.type!r} is not valid: Galera members are all equal "
                    "(omit type)"
                )
            roles.append("member")
        else:
            if member.type not in (None, "master", "replica"):
                raise BadRequest(
                    f"member type {member.type!r} is not valid: a Redis cluster member is a "
                    "'master' (the default) or a 'replica'"
                )
            roles.append(member.type or "master")
    return roles


def _add_members(
    rt: Runtime,
    s: Session,
    project_id: str,
    cluster_id: str,
    version: DatastoreVersion,
    kind: ClusterKind,
    flavor: Flavor,
    size: int,
    new: list[_NewMember],
    workflow_id: str,
    *,
    existing: tuple[InstanceRecord, ...] = (),
) -> None:
    """Check quota, place and insert the new members (owned by ``workflow_id``): spread
    over the hosts; a Redis replica follows the master with the fewest replicas, on
    another host where there is one."""
    count = len(new)
    quotas.lock_project(s, project_id)
    quotas.check(
        rt,
        s,
        project_id,
        {"instances": count, "ram": flavor.ram_mb * count, "volumes": size * count},
    )
    expiry = timedelta(seconds=rt.settings.heartbeat_expiry_s)
    crowd = Counter(m.host.id for m in existing)
    masters = {
        m.instance.id: m.host.id for m in existing if membership(m.instance).role == "master"
    }
    followers = Counter(membership(m.instance).follows for m in existing)
    now = utcnow()
    deadline = now + timedelta(seconds=rt.settings.create_timeout_s * count)
    for member in sorted(new, key=lambda m: m.role == "replica"):
        instance_id = str(uuid.uuid4())
        follows = None
        if member.role == "replica":
            follows = min(masters, key=lambda master: (followers[master], master))
            followers[follows] += 1
        host: Host = placement.choose_host(
            s,
            version.manager,
            version.version,
            expiry,
            avoid=masters[follows] if follows else None,
            crowd=crowd,
        )
        crowd[host.id] += 1
        if member.role == "master":
            masters[instance_id] = host.id
        port = placement.lease_port(s, host, instance_id)
        if kind is ClusterKind.REDIS:
            # the bus gets a leased port of its own (``cluster-port``): port + 10000
            # could fall in the ephemeral range, where an outgoing connection may hold it
            bus_port = placement.lease_port(s, host, instance_id, "bus")
            info = Membership(role=member.role, follows=follows, bus_port=bus_port)
        else:
            extra = {p: placement.lease_port(s, host, instance_id, p) for p in _GALERA_PORTS}
            info = Membership(
                role=member.role,
                gcomm_port=extra["gcomm"],
                ist_port=extra["ist"],
                sst_port=extra["sst"],
            )
        s.add(
            Instance(
                id=instance_id,
                project_id=project_id,
                name=member.name,
                flavor_id=flavor.id,
                volume_gb=size,
                datastore_version_id=version.id,
                host_id=host.id,
                port=port,
                task_status=TaskStatus.BUILDING.value,
                task_workflow_id=workflow_id,
                task_deadline=deadline,
                service_status=ServiceStatus.NEW.value,
                parameters_json="{}",
                cluster_id=cluster_id,
                cluster_json=info.to_json(),
                created=now,
                updated=now,
                deleted=False,
            )
        )
        now += timedelta(microseconds=1)  # members keep their order


def _claim(
    rt: Runtime,
    s: Session,
    rec: ClusterRecord,
    task: ClusterTask,
    workflow_id: str,
    *,
    per_member: int = 0,
) -> None:
    """Compare-and-set the cluster's task from NONE; 422 while another task runs."""
    cluster = rec.cluster
    if cluster.task_status != ClusterTask.NONE.value:
        raise UnprocessableEntity(
            f"Cluster {cluster.id} is not currently available for an action to be performed "
            f"(task {cluster.task_status}); wait for it to finish"
        )
    count = max(per_member, len(rec.members))
    now = utcnow()
    cluster.task_status = task.value
    cluster.task_workflow_id = workflow_id
    cluster.task_deadline = now + timedelta(seconds=rt.settings.create_timeout_s * count)
    cluster.fault_message = None
    cluster.fault_created = None
    cluster.updated = now


def _claim_members(
    s: Session,
    ids: list[str],
    task: TaskStatus,
    workflow_id: str,
    rec: ClusterRecord,
    *,
    any_task: bool = False,
) -> None:
    """Give members' tasks to the cluster's workflow; 422 if one is busy with another."""
    by_id = {m.instance.id: m.instance for m in rec.members}
    allowed = {t.value for t in IDLE_TASKS | ERROR_TASKS}
    for instance_id in ids:
        inst = by_id[instance_id]
        if not any_task and inst.task_status not in allowed:
            raise UnprocessableEntity(
                f"member {instance_id} is not currently available (task {inst.task_status}); "
                "wait for it to finish"
            )
        inst.task_status = task.value
        inst.task_workflow_id = workflow_id
        inst.task_deadline = rec.cluster.task_deadline
        inst.updated = utcnow()
