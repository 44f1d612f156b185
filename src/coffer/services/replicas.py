"""Replica sets (Trove's replication API): create replicas of an instance, detach one,
promote one to source (planned switchover), eject a lost source.

A replica set is a source and the instances whose ``replica_of_id`` names it (no
replicas of replicas, as Trove). A replica takes the source's datastore version,
configuration and, unless given, flavor and volume size; it replicates through the
source's replication account (``REPLICATION_USER``), whose password is made with the
first replica and kept sealed on the source. How a replica gets its data is the engine's
``Catalog.replica_seed``: "backup" (a fresh full backup of the source, restored on the
replica's host, then followed) or "engine" (it starts empty and the engine copies).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from coffer import engines
from coffer.clock import utcnow
from coffer.contracts.api_v1 import InstanceCreate
from coffer.db.models import Instance
from coffer.domain.states import SERVING, ServiceStatus, TaskStatus
from coffer.errors import BadRequest, Forbidden, NotImplementedByDatastore
from coffer.security import new_password
from coffer.services import catalog, clusters, placement, quotas, records
from coffer.services.claims import claim
from coffer.services.runtime import Runtime

__all__ = [
    "REPLICATION_USER",
    "check_deletable",
    "claim_for_eject",
    "create",
    "detach",
    "eject",
    "promote",
    "set_auto_failover",
]

#: the account replicas log in with (every engine reserves the name)
REPLICATION_USER = "coffer_replicator"
_MAX_REPLICAS = 3
#: only these may be given along with ``replica_of`` (the rest come from the source)
_ALLOWED_WITH_REPLICA = {"name", "replica_of", "replica_count", "flavorRef", "volume", "access"}


def create(rt: Runtime, project_id: str, body: InstanceCreate) -> list[str]:
    """Validate and record ``replica_count`` replicas of ``body.replica_of``; their ids
    (their create workflows are the caller's to start)."""
    from coffer.services.instances import validate_name, volume_size

    count = 1 if body.replica_count is None else body.replica_count
    if not 1 <= count <= _MAX_REPLICAS:
        raise BadRequest(f"replica_count must be between 1 and {_MAX_REPLICAS}")
    given = {k for k in body.model_fields_set if getattr(body, k) not in (None, [], {})}
    refused = sorted(given - _ALLOWED_WITH_REPLICA)
    if refused:
        raise BadRequest(
            f"a replica takes its datastore, configuration, databases and users from its "
            f"source: remove {', '.join(refused)} (replica_of may be combined only with "
            "name, replica_count, flavorRef and volume)"
        )
    name = validate_name(body.name)
    assert body.replica_of is not None
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with rt.sessions.begin() as s:
        source = records.load(s, body.replica_of, project_id)
        src = source.instance
        clusters.refuse_member(src, "replicate (grow)")
        if src.replica_of_id:
            raise Forbidden(
                f"Instance {src.id} is itself a replica (of {src.replica_of_id}): replicas of "
                "replicas are not supported; name the source instead"
            )
        if engines.catalog(source.version.manager).replica_seed is None:
            raise NotImplementedByDatastore(f"{source.version.manager} has no replicas")
        if (
            src.task_status != TaskStatus.NONE.value
            or ServiceStatus(src.service_status) not in SERVING
        ):
            raise BadRequest(
                f"Instance {src.id} must be ACTIVE and healthy to be replicated "
                f"(task {src.task_status}, service {src.service_status})"
            )
        flavor = source.flavor
        if body.flavorRef is not None:
            found = catalog.find_flavor(s, body.flavorRef)
            if found is None:
                raise BadRequest(f"Flavor {body.flavorRef} could not be found.")
            flavor = found
        size = src.volume_gb
        if body.volume is not None:
            size = volume_size(body.volume, rt.settings.max_volume_gb)
            if size < src.volume_gb:
                raise BadRequest(
                    f"a replica's volume ({size} GB) cannot be smaller than its source's "
                    f"({src.volume_gb} GB)"
                )
        owner = src.project_id
        quotas.lock_project(s, owner)
        quotas.check(
            rt,
            s,
            owner,
            {"instances": count, "ram": count * flavor.ram_mb, "volumes": count * size},
        )
        if src.replication_secret_sealed is None:
            src.replication_secret_sealed = rt.sealer.seal(new_password().encode())
        expiry = timedelta(seconds=rt.settings.heartbeat_expiry_s)
        timeout = timedelta(seconds=max(rt.settings.create_timeout_s, rt.settings.backup_timeout_s))
        now = utcnow()
        for index, replica_id in enumerate(ids):
            host = placement.choose_host(
                s, source.version.manager, source.version.version, expiry, avoid=src.host_id
            )
            s.add(
                Instance(
                    id=replica_id,
                    project_id=owner,
                    name=name if count == 1 else f"{name}-{index + 1}",
                    flavor_id=flavor.id,
                    volume_gb=size,
                    datastore_version_id=src.datastore_version_id,
                    host_id=host.id,
                    port=placement.lease_port(s, host, replica_id),
                    task_status=TaskStatus.BUILDING.value,
                    task_workflow_id=f"create-{replica_id}",
                    task_deadline=now + timeout,
                    service_status=ServiceStatus.NEW.value,
                    configuration_id=src.configuration_id,
                    parameters_json=src.parameters_json,
                    replica_of_id=src.id,
                    created=now,
                    updated=now,
                    deleted=False,
                )
            )
    return ids


def set_auto_failover(
    rt: Runtime, project_id: str | None, instance_id: str, enabled: bool | None
) -> None:
    """Turn automatic failover of the instance's replica set on or off (on its source)."""
    if enabled is None:
        raise BadRequest("auto_failover must be true or false")
    with rt.sessions.begin() as s:
        inst = records.load(s, instance_id, project_id).instance
        if inst.replica_of_id:
            raise BadRequest(
                f"Instance {instance_id} is a replica: set auto_failover on its source "
                f"{inst.replica_of_id}"
            )
        inst.auto_failover = enabled
        inst.updated = utcnow()


def check_deletable(s: Session, instance: Instance) -> None:
    """Trove refuses to delete a source that still has replicas (403)."""
    replicas = records.replicas_of(s, [instance.id]).get(instance.id)
    if replicas:
        raise Forbidden(
            f"Instance {instance.id} is the source of replicas {', '.join(replicas)}: detach "
            "or delete them first (ReplicaSourceDeleteForbidden)"
        )


def detach(rt: Runtime, project_id: str | None, instance_id: str) -> str:
    """Claim a replica for leaving its set (DETACHING); the workflow id to start."""
    workflow_id = f"detach-{instance_id}-{uuid.uuid4().hex[:8]}"
    with rt.sessions.begin() as s:
        inst = records.load(s, instance_id, project_id).instance
        if not inst.replica_of_id:
            raise BadRequest(f"Instance {instance_id} is not a replica.")
        claim(
            s,
            instance_id,
            to=TaskStatus.DETACHING,
            workflow_id=workflow_id,
            timeout_s=rt.settings.action_timeout_s,
        )
    return workflow_id


def promote(rt: Runtime, project_id: str | None, instance_id: str) -> str:
    """Claim a replica, its source and its siblings for a switchover (PROMOTING, all
    or none); the workflow id to start."""
    workflow_id = f"promote-{instance_id}-{uuid.uuid4().hex[:8]}"
    with rt.sessions.begin() as s:
        inst = records.load(s, instance_id, project_id).instance
        if not inst.replica_of_id:
            raise BadRequest(f"Instance {instance_id} is not a replica.")
        members = [
            inst.replica_of_id,
            *records.replicas_of(s, [inst.replica_of_id])[inst.replica_of_id],
        ]
        for member in members:
            claim(
                s,
                member,
                to=TaskStatus.PROMOTING,
                workflow_id=workflow_id,
                timeout_s=rt.settings.action_timeout_s,
            )
    return workflow_id


def eject(rt: Runtime, project_id: str | None, instance_id: str) -> str:
    """Claim a lost source and its replicas for replacing it with the most advanced
    replica (EJECTING); the workflow id to start. As Trove: only a source with replicas,
    and only once its host has been silent for the heartbeat expiry."""
    workflow_id = f"eject-{instance_id}-{uuid.uuid4().hex[:8]}"
    with rt.sessions.begin() as s:
        rec = records.load(s, instance_id, project_id)
        if not rec.replicas:
            raise BadRequest(f"Instance {instance_id} is not a replica source.")
        seen = rec.host.last_heartbeat
        expiry = timedelta(seconds=rt.settings.heartbeat_expiry_s)
        if seen is not None and utcnow() - seen < expiry:
            age, limit = int((utcnow() - seen).total_seconds()), int(expiry.total_seconds())
            raise BadRequest(
                f"Instance {instance_id}'s host was heard from {age} s ago: a source is "
                f"ejected only when lost (silent for {limit} s); use "
                "promote_to_replica_source on a replica for a planned switchover"
            )
        claim_for_eject(rt, s, instance_id, list(rec.replicas), workflow_id)
    return workflow_id


def claim_for_eject(
    rt: Runtime, s: Session, source_id: str, replica_ids: list[str], workflow_id: str
) -> None:
    """Claim the lost source (whatever its engine's state) and its serving replicas
    (EJECTING), all or none (422 if one is busy)."""
    claim(
        s,
        source_id,
        to=TaskStatus.EJECTING,
        workflow_id=workflow_id,
        timeout_s=rt.settings.action_timeout_s,
        need_service=None,
    )
    for replica_id in replica_ids:
        claim(
            s,
            replica_id,
            to=TaskStatus.EJECTING,
            workflow_id=workflow_id,
            timeout_s=rt.settings.action_timeout_s,
            need_service=SERVING,
        )
