"""Users, databases and root: validated here, carried out by the agent synchronously.

Nothing about users or databases is stored in the metadata database (the engine is the
source of truth, as in Trove); passwords travel only inside sealed agent commands.
"""

from __future__ import annotations

import uuid
from typing import Any

from coffer import engines
from coffer.clock import utcnow
from coffer.contracts.agent_v1 import CommandKind
from coffer.contracts.engine import DatabaseSpec, UserSpec
from coffer.db.models import Instance
from coffer.domain.states import ServiceStatus, TaskStatus
from coffer.errors import UnprocessableEntity
from coffer.services import records
from coffer.services.commands import CommandBus
from coffer.services.runtime import Runtime

_READY_TASKS = {TaskStatus.NONE.value, TaskStatus.RESTART_REQUIRED.value}
_READY_SERVICE = {ServiceStatus.HEALTHY.value, ServiceStatus.RUNNING.value}


def engine_name(rt: Runtime, project_id: str | None, instance_id: str) -> str:
    with rt.sessions() as s:
        return records.load(s, instance_id, project_id).version.manager


async def call(
    rt: Runtime, project_id: str | None, instance_id: str, op: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Run one admin operation on the instance's engine and return its result."""
    with rt.sessions() as s:
        rec = records.load(s, instance_id, project_id)
        inst = rec.instance
        if inst.task_status not in _READY_TASKS or inst.service_status not in _READY_SERVICE:
            raise UnprocessableEntity(
                f"Instance {instance_id} is not currently available for an action to be "
                f"performed (task {inst.task_status}, service {inst.service_status})."
            )
        spec = records.spec_of(rec)
        host_id = rec.host.id
    command_id = f"admin-{instance_id}-{op}-{uuid.uuid4().hex}"
    bus = CommandBus(rt)
    bus.submit(
        command_id=command_id,
        host_id=host_id,
        instance_id=instance_id,
        kind=CommandKind.ADMIN,
        payload={"spec": spec.model_dump(), "op": op, "args": args},
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
