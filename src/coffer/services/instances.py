"""Instance use cases: validate everything, write once, then hand off to a workflow.

Every state-changing operation claims the instance with a compare-and-set on
``task_status`` (``claim``); the durable workflow started afterwards owns the task until
it sets it back to NONE (or to an error task with a fault).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from coffer import engines
from coffer.clock import utcnow
from coffer.contracts.api_v1 import InstanceAction, InstanceCreate, InstanceUpdate, VolumeIn
from coffer.contracts.engine import DatabaseSpec, UserSpec
from coffer.db.models import Instance
from coffer.domain.states import (
    ERROR_TASKS,
    IDLE_TASKS,
    ServiceStatus,
    TaskStatus,
)
from coffer.errors import BadRequest
from coffer.services import (
    backups,
    catalog,
    clusters,
    configurations,
    placement,
    quotas,
    records,
    replicas,
)
from coffer.services.auth import Principal
from coffer.services.claims import claim
from coffer.services.runtime import Runtime
from coffer.workflows import instances as wf
from coffer.workflows import replicas as replica_wf

_HAS_ALNUM = re.compile(r"[A-Za-z0-9]")


def validate_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 255 or not _HAS_ALNUM.search(name):
        raise BadRequest(
            "Validation error: instance name must be 1-255 characters with at least one "
            "letter or digit"
        )
    return name


def volume_size(volume: VolumeIn | None, max_gb: int) -> int:
    if volume is None:
        raise BadRequest("Validation error: instance['volume'] is required (e.g. {\"size\": 2})")
    size = int(volume.size)
    if size < 1:
        raise BadRequest("Validation error: volume size must be at least 1 (GB)")
    if size > max_gb:
        raise BadRequest(
            f"Volume 'size' cannot exceed maximum of {max_gb} GB, {size} cannot be accepted."
        )
    return size


@dataclass(frozen=True)
class CreateExtras:
    """Initial databases and users; travels sealed because it holds passwords."""

    databases: list[DatabaseSpec]
    users: list[UserSpec]
    #: the backup chain to restore from (holds data keys), if any
    restore: dict[str, Any] | None = None
    #: the instance to clone (on the same host), if any
    clone: dict[str, Any] | None = None

    def to_json(self) -> str:
        out: dict[str, Any] = {
            "databases": [d.model_dump() for d in self.databases],
            "users": [u.model_dump() for u in self.users],
        }
        if self.restore is not None:
            out["restore"] = self.restore
        if self.clone is not None:
            out["clone"] = self.clone
        return json.dumps(out)


def _initial_objects(engine_name: str, body: InstanceCreate) -> CreateExtras:
    cat = engines.catalog(engine_name)
    dbs = [
        DatabaseSpec(name=d.name, character_set=d.character_set, collate=d.collate)
        for d in body.databases
    ]
    names = [d.name for d in dbs]
    if len(set(names)) != len(names):
        raise BadRequest("the same database is listed twice")
    for db in dbs:
        cat.validate_database(db)
    users = []
    for u in body.users:
        grants = tuple(d.name for d in u.databases)
        missing = [g for g in grants if g not in names]
        if missing:
            raise BadRequest(
                f"user {u.name!r} is given access to {', '.join(missing)}, which is not among "
                "the databases being created"
            )
        spec = UserSpec(name=u.name, host=u.host or "%", password=u.password, databases=grants)
        cat.validate_user(spec)
        users.append(spec)
    keys = [(u.name, u.host) for u in users]
    if len(set(keys)) != len(keys):
        raise BadRequest("the same user is listed twice")
    return CreateExtras(dbs, users)


def _refuse_unsupported(body: InstanceCreate) -> None:
    if body.replica_count is not None and not body.replica_of:
        raise BadRequest("replica_count is only valid together with replica_of")
    if body.locality:
        raise BadRequest("locality is not supported: Coffer places instances by capacity")


def create(rt: Runtime, project_id: str, body: InstanceCreate) -> records.InstanceRecord:
    """Validate, check quota, place and insert the instance, then start its workflow
    (with ``replica_of``: the replicas, see ``replicas.create``; the first is returned)."""
    _refuse_unsupported(body)
    if body.replica_of:
        made = replicas.create(rt, project_id, body)
        for replica_id in made:
            replica_wf.start_create_replica(replica_id)
        with rt.sessions() as s:
            return records.load(s, made[0], project_id)
    name = validate_name(body.name)
    if body.flavorRef is None:
        raise BadRequest("Validation error: instance['flavorRef'] is required")
    size = volume_size(body.volume, rt.settings.max_volume_gb)
    instance_id = str(uuid.uuid4())
    with rt.sessions.begin() as s:
        flavor = catalog.find_flavor(s, body.flavorRef)
        if flavor is None:
            raise BadRequest(f"Flavor {body.flavorRef} could not be found.")
        ds = body.datastore or None
        if body.restorePoint is not None:
            plan = backups.plan_restore(rt, s, project_id, body.restorePoint, size)
            version = plan.version
            if ds is not None and (ds.type or ds.version):
                given = catalog.resolve_version(s, ds.type, ds.version).version
                if given.id != version.id:
                    raise BadRequest(
                        f"the instance or backup to restore holds {version.manager} "
                        f"{version.name}; an instance restored from it must use that datastore "
                        "version (omit 'datastore' or name the same one)"
                    )
        else:
            version = catalog.resolve_version(
                s, ds.type if ds else None, ds.version if ds else None
            ).version
        extras = _initial_objects(version.manager, body)
        if body.restorePoint is not None:
            if plan.clone is not None:
                extras = replace(extras, clone=plan.clone)
            else:
                extras = replace(extras, restore=plan.payload)
        config_id = body.configuration or body.configuration_id
        parameters = "{}"
        if config_id:
            cfg = configurations.resolve_for_new_instance(s, project_id, config_id, version)
            parameters = cfg.values_json
        # a restore replays its backup before the engine answers: give it a backup's time
        timeout_s = rt.settings.create_timeout_s
        if body.restorePoint is not None:
            timeout_s = max(timeout_s, rt.settings.backup_timeout_s)
        quotas.lock_project(s, project_id)
        quotas.check(rt, s, project_id, {"instances": 1, "ram": flavor.ram_mb, "volumes": size})
        expiry = timedelta(seconds=rt.settings.heartbeat_expiry_s)
        if body.restorePoint is not None and plan.clone_host is not None:
            host = plan.clone_host  # a clone shares its source's volume pool
        else:
            host = placement.choose_host(s, version.manager, version.version, expiry)
        port = placement.lease_port(s, host, instance_id)
        now = utcnow()
        s.add(
            Instance(
                id=instance_id,
                project_id=project_id,
                name=name,
                flavor_id=flavor.id,
                volume_gb=size,
                datastore_version_id=version.id,
                host_id=host.id,
                port=port,
                task_status=TaskStatus.BUILDING.value,
                task_workflow_id=f"create-{instance_id}",
                task_deadline=now + timedelta(seconds=timeout_s),
                service_status=ServiceStatus.NEW.value,
                configuration_id=config_id or None,
                parameters_json=parameters,
                created=now,
                updated=now,
                deleted=False,
            )
        )
    wf.start_create(instance_id, rt.sealer.seal(extras.to_json().encode()))
    with rt.sessions() as s:
        return records.load(s, instance_id, project_id)


def get(rt: Runtime, project_id: str | None, instance_id: str) -> records.InstanceRecord:
    with rt.sessions() as s:
        return records.load(s, instance_id, project_id)


def list_all(
    rt: Runtime, project_id: str | None, *, include_clustered: bool = True
) -> list[records.InstanceRecord]:
    with rt.sessions() as s:
        return records.load_many(s, project_id, include_clustered=include_clustered)


def rename(rt: Runtime, project_id: str | None, instance_id: str, body: InstanceUpdate) -> None:
    others = {k for k in body.model_fields_set if k != "name"}
    if len(others) > 1:
        raise BadRequest("Only one attribute (except 'name') is allowed to update.")
    if "replica_of" in others or "slave_of" in others:
        if body.name is not None:
            raise BadRequest("rename and detach in two requests")
        replica_wf.start_detach(replicas.detach(rt, project_id, instance_id), instance_id)
        return
    if "datastore_version" in others:
        raise BadRequest("datastore version upgrades are not supported by this Coffer version yet")
    if "auto_failover" in others:
        replicas.set_auto_failover(rt, project_id, instance_id, body.auto_failover)
        others.discard("auto_failover")
        if not others and body.name is None:
            return
    with rt.sessions.begin() as s:
        rec = records.load(s, instance_id, project_id)
        if body.name is not None:
            rec.instance.name = validate_name(body.name)
            rec.instance.updated = utcnow()
    if "configuration" in others or not body.model_fields_set:
        with rt.sessions() as s:
            clusters.refuse_member(records.load(s, instance_id, project_id).instance, "configure")
        # Trove: an empty {"instance": {}} detaches the configuration group
        configurations.attach(rt, project_id, instance_id, body.configuration)


def delete(rt: Runtime, project_id: str | None, instance_id: str) -> None:
    workflow_id = f"delete-{instance_id}-{uuid.uuid4().hex[:8]}"
    with rt.sessions.begin() as s:
        inst = records.load(s, instance_id, project_id).instance
        clusters.refuse_member(inst, "delete (shrink)")
        replicas.check_deletable(s, inst)
        claim(
            s,
            instance_id,
            to=TaskStatus.DELETING,
            workflow_id=workflow_id,
            timeout_s=rt.settings.action_timeout_s,
            allowed=IDLE_TASKS | ERROR_TASKS,
            need_service=None,
        )
    wf.start_delete(workflow_id, instance_id)


def act(
    rt: Runtime,
    principal: Principal,
    project_id: str | None,
    instance_id: str,
    body: InstanceAction,
) -> None:
    chosen = [k for k in body.model_fields_set if getattr(body, k) is not None]
    if len(chosen) != 1:
        raise BadRequest(
            "Validation error: the action body must hold exactly one of restart, resize, "
            "reset_status"
        )
    action = chosen[0]
    with rt.sessions() as s:
        member = records.load(s, instance_id, project_id).instance
    if action == "resize" or (action == "restart" and not principal.is_admin):
        clusters.refuse_member(member, action)
    if action == "restart":
        _restart(rt, project_id, instance_id)
    elif action == "resize":
        assert body.resize is not None
        if (body.resize.flavorRef is None) == (body.resize.volume is None):
            raise BadRequest("Validation error: resize takes exactly one of flavorRef or volume")
        if body.resize.flavorRef is not None:
            _resize_flavor(rt, project_id, instance_id, str(body.resize.flavorRef))
        else:
            _resize_volume(rt, project_id, instance_id, body.resize.volume)
    elif action == "reset_status":
        principal.require_admin()
        _reset_status(rt, project_id, instance_id)
    elif action == "promote_to_replica_source":
        replica_wf.start_promote(replicas.promote(rt, project_id, instance_id), instance_id)
    else:
        replica_wf.start_eject(replicas.eject(rt, project_id, instance_id), instance_id)


def _restart(rt: Runtime, project_id: str | None, instance_id: str) -> None:
    workflow_id = f"restart-{instance_id}-{uuid.uuid4().hex[:8]}"
    with rt.sessions.begin() as s:
        records.load(s, instance_id, project_id)
        claim(
            s,
            instance_id,
            to=TaskStatus.REBOOTING,
            workflow_id=workflow_id,
            timeout_s=rt.settings.action_timeout_s,
        )
    wf.start_restart(workflow_id, instance_id)


def _resize_flavor(rt: Runtime, project_id: str | None, instance_id: str, ref: str) -> None:
    workflow_id = f"resize-flavor-{instance_id}-{uuid.uuid4().hex[:8]}"
    with rt.sessions.begin() as s:
        rec = records.load(s, instance_id, project_id)
        flavor = catalog.find_flavor(s, ref)
        if flavor is None:
            raise BadRequest(f"Flavor {ref} could not be found.")
        if flavor.id == rec.flavor.id:
            raise BadRequest("The new flavor id must be different than the current flavor id.")
        owner = rec.instance.project_id
        quotas.lock_project(s, owner)
        quotas.check(rt, s, owner, {"ram": flavor.ram_mb - rec.flavor.ram_mb})
        claim(
            s,
            instance_id,
            to=TaskStatus.RESIZING,
            workflow_id=workflow_id,
            timeout_s=rt.settings.action_timeout_s,
        )
    wf.start_resize_flavor(workflow_id, instance_id, flavor.id)


def _resize_volume(
    rt: Runtime, project_id: str | None, instance_id: str, volume: VolumeIn | None
) -> None:
    size = volume_size(volume, rt.settings.max_volume_gb)
    workflow_id = f"resize-volume-{instance_id}-{uuid.uuid4().hex[:8]}"
    with rt.sessions.begin() as s:
        rec = records.load(s, instance_id, project_id)
        current = rec.instance.volume_gb
        if size <= current:
            raise BadRequest(
                f"The new volume 'size' ({size}) must be larger than the current volume size "
                f"of '{current}'; volumes can only grow."
            )
        owner = rec.instance.project_id
        quotas.lock_project(s, owner)
        quotas.check(rt, s, owner, {"volumes": size - current})
        claim(
            s,
            instance_id,
            to=TaskStatus.RESIZING,
            workflow_id=workflow_id,
            timeout_s=rt.settings.action_timeout_s,
        )
    wf.start_resize_volume(workflow_id, instance_id, size)


def _reset_status(rt: Runtime, project_id: str | None, instance_id: str) -> None:
    """Admin: forget the current task (cancelling its workflow); engine state unknown."""
    with rt.sessions.begin() as s:
        inst = records.load(s, instance_id, project_id).instance
        workflow_id = inst.task_workflow_id
        inst.task_status = TaskStatus.NONE.value
        inst.task_workflow_id = None
        inst.task_deadline = None
        inst.service_status = ServiceStatus.UNKNOWN.value
        inst.updated = utcnow()
        backups.fail_running(s, instance_id, "the instance's status was reset by an admin")
    if workflow_id:
        wf.cancel(workflow_id)
