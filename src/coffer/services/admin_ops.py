"""Users, databases and root: validated here, carried out by the agent synchronously.

Nothing about users or databases is stored in the metadata database (the engine is the
source of truth, as in Trove); passwords travel only inside sealed agent commands.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from coffer import engines
from coffer.clock import utcnow
from coffer.contracts.agent_v1 import CommandKind
from coffer.contracts.engine import DatabaseSpec, UserSpec
from coffer.db.models import Instance
from coffer.domain.states import ServiceStatus, TaskStatus
from coffer.errors import BadRequest, CofferError, UnprocessableEntity
from coffer.services import cluster_records, records
from coffer.services.commands import CommandBus
from coffer.services.runtime import Runtime

log = logging.getLogger("coffer.admin_ops")

_READY_TASKS = {TaskStatus.NONE.value, TaskStatus.RESTART_REQUIRED.value}
_READY_SERVICE = {ServiceStatus.HEALTHY.value, ServiceStatus.RUNNING.value}


def engine_name(rt: Runtime, project_id: str | None, instance_id: str) -> str:
    with rt.sessions() as s:
        return records.load(s, instance_id, project_id).version.manager


#: operations that change accounts (copied to the replicas of engines whose replication
#: does not carry accounts)
_ACCOUNT_OPS = frozenset(
    {
        "create_users",
        "delete_user",
        "update_user",
        "grant_access",
        "revoke_access",
        "enable_root",
        "disable_root",
    }
)


async def call(
    rt: Runtime, project_id: str | None, instance_id: str, op: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Run one admin operation on the instance's engine and return its result.

    Where the engine's replication does not carry accounts (``Catalog.accounts_replicate``
    false: Redis), an account change on a source is made on its replicas too, and one
    on a replica is refused (its accounts follow its source's); one on a cluster
    member is made on every member of its cluster."""
    with rt.sessions() as s:
        rec = records.load(s, instance_id, project_id)
        inst = rec.instance
        if inst.task_status not in _READY_TASKS or inst.service_status not in _READY_SERVICE:
            raise UnprocessableEntity(
                f"Instance {instance_id} is not currently available for an action to be "
                f"performed (task {inst.task_status}, service {inst.service_status})."
            )
        copied = op in _ACCOUNT_OPS and not engines.catalog(rec.version.manager).accounts_replicate
        if copied and inst.replica_of_id:
            raise BadRequest(
                f"Instance {instance_id} is a replica: its accounts follow its source "
                f"{inst.replica_of_id}; change them there"
            )
        targets = [(instance_id, rec.host.id, records.spec_of(rec))]
        if copied:
            others = list(rec.replicas)
            if inst.cluster_id is not None:
                members = cluster_records.load(s, inst.cluster_id, None).members
                others += [m.instance.id for m in members if m.instance.id != instance_id]
            for other_id in others:
                other = records.load(s, other_id, None)
                targets.append((other_id, other.host.id, records.spec_of(other)))
    result: dict[str, Any] = {}
    for index, (target_id, host_id, spec) in enumerate(targets):
        try:
            answer = await _run(rt, target_id, host_id, spec.model_dump(), op, args)
        except CofferError:
            if index == 0:
                raise
            log.exception("copying %s to %s failed", op, target_id)
            continue
        if index == 0:
            result = answer
    return result


async def _run(
    rt: Runtime, instance_id: str, host_id: str, spec: dict[str, Any], op: str, args: dict[str, Any]
) -> dict[str, Any]:
    command_id = f"admin-{instance_id}-{op}-{uuid.uuid4().hex}"
    bus = CommandBus(rt)
    bus.submit(
        command_id=command_id,
        host_id=host_id,
        instance_id=instance_id,
        kind=CommandKind.ADMIN,
        payload={"spec": spec, "op": op, "args": args},
    )
    return await bus.wait_async(command_id, rt.settings.admin_call_timeout_s)


def validate_databases(
    rt: Runtime, project_id: str | None, instance_id: str, dbs: list[DatabaseSpec]
) -> None:
    cat = engines.catalog(engine_name(rt, project_id, instance_id))
    for db in dbs:
        cat.validate_database(db)


def validate_users(
    rt: Runtime, project_id: str | None, instance_id: str, users: list[UserSpec]
) -> None:
    cat = engines.catalog(engine_name(rt, project_id, instance_id))
    for user in users:
        cat.validate_user(user)


def note_root_enabled(rt: Runtime, instance_id: str, enabled: bool) -> None:
    with rt.sessions.begin() as s:
        inst = s.get(Instance, instance_id)
        if inst is not None:
            inst.root_enabled_at = utcnow() if enabled else None
