"""Replica workflows: create a replica (seeded from a fresh backup of its source, or by the
engine itself), detach one, promote one to source (planned switchover: the source is
fenced first and the candidate waits for its last change, so no committed write is
lost), eject a lost source (its most advanced replica takes over).

A replica's create owns the replica's task (BUILDING) and, like any create, ends ACTIVE
or in BUILDING_ERROR with a fault. Its steps are commands to two agents: the source's
(keep what the replica needs, stream a seed backup) and the replica's (restore, follow,
start). The seed backup is an ordinary backup of the source, deleted once the replica
is up (or the create failed).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from dbos import DBOS, SetWorkflowID
from sqlalchemy import select, update

from coffer import engines
from coffer.clock import utcnow
from coffer.contracts.agent_v1 import CommandKind
from coffer.db.models import Backup, DatastoreVersion, Host, Instance
from coffer.domain.states import BackupState, TaskStatus
from coffer.errors import CofferError
from coffer.services.backup_records import DELETE_PREFIX, object_key, restore_payload
from coffer.services.commands import CommandBus
from coffer.services.replicas import REPLICATION_USER
from coffer.storage.sealed import new_data_key
from coffer.workflows import backups as backup_steps
from coffer.workflows.observe import observed_workflow
from coffer.workflows.runtime import current
from coffer.workflows.steps import await_command, describe, fail_task, finish_task, send_command

__all__ = ["start_create_replica", "start_detach", "start_eject", "start_promote"]

#: how long a switchover waits for the candidate to apply the fenced source's last change
CATCH_UP_TIMEOUT_S = 60.0
#: how long a lost former source is waited for to rejoin as a replica, and how often
REJOIN_WAIT_S = 7 * 24 * 3600.0
REJOIN_POLL_S = 5.0


@observed_workflow(name="replica.create")
def create_replica(replica_id: str) -> None:
    wid = f"create-{replica_id}"
    seed_backup: str | None = None
    try:
        source_id, seed_kind = source_of(replica_id)
        opened = f"{wid}:open-source"
        send_command(opened, source_id, CommandKind.REPLICATION_OPEN.value, {}, grant(replica_id))
        facts = await_command(opened, replica_id)["facts"]
        restore: dict[str, Any] | None = None
        positions: dict[str, str] = {}
        if seed_kind == "backup":
            seed_backup = new_seed_backup(replica_id, source_id)
            streamed = f"{wid}:seed"
            sealed = backup_steps.backup_payload(seed_backup)
            send_command(streamed, source_id, CommandKind.BACKUP.value, {}, sealed)
            result = await_command(streamed, replica_id)
            backup_steps.complete(seed_backup, result)
            positions = dict(result.get("positions", {}))
            restore = seed_restore(seed_backup)
        ensure = f"{wid}:ensure"
        extras = ensure_payload(source_id, facts, positions, restore)
        send_command(ensure, replica_id, CommandKind.ENSURE.value, {}, extras)
        observed = await_command(ensure, replica_id)
        finish_task(replica_id, wid, observed=observed)
    except Exception as exc:
        message, details = describe(exc)
        fail_task(
            replica_id, wid, TaskStatus.BUILDING_ERROR.value, f"create failed: {message}", details
        )
    finally:
        if seed_backup is not None:
            backup_steps.start_delete(discard_seed(seed_backup), [seed_backup])


@DBOS.step()
def source_of(replica_id: str) -> tuple[str, str]:
    """The replica's source and how the engine seeds replicas."""
    rt = current()
    with rt.sessions() as s:
        row = s.execute(
            select(Instance.replica_of_id, DatastoreVersion.manager)
            .join(DatastoreVersion, DatastoreVersion.id == Instance.datastore_version_id)
            .where(Instance.id == replica_id)
        ).one()
    seed = engines.catalog(row.manager).replica_seed
    return str(row.replica_of_id), str(seed)


def _secret(source_id: str) -> str:
    rt = current()
    with rt.sessions() as s:
        source = s.get(Instance, source_id)
        assert source is not None and source.replication_secret_sealed is not None
        return rt.sealer.open(source.replication_secret_sealed).decode()


@DBOS.step()
def grant(replica_id: str) -> str:
    """The sealed arguments of ``open_source`` for this replica (holds the password)."""
    rt = current()
    with rt.sessions() as s:
        replica = s.get(Instance, replica_id)
        assert replica is not None and replica.replica_of_id is not None
        source_id = replica.replica_of_id
    payload = {"replica_id": replica_id, "user": REPLICATION_USER, "password": _secret(source_id)}
    return rt.sealer.seal(json.dumps(payload).encode())


@DBOS.step()
def new_seed_backup(replica_id: str, source_id: str) -> str:
    """Record the backup a replica is seeded from (an ordinary full backup of the source)."""
    rt = current()
    backup_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"seed-{replica_id}"))
    with rt.sessions.begin() as s:
        if s.get(Backup, backup_id) is not None:
            return backup_id  # a resumed workflow
        source = s.get(Instance, source_id)
        assert source is not None
        now = utcnow()
        s.add(
            Backup(
                id=backup_id,
                project_id=source.project_id,
                instance_id=source.id,
                name=f"replica-seed-{replica_id}",
                description=f"seeds replica {replica_id}; deleted once it is up",
                datastore_version_id=source.datastore_version_id,
                state=BackupState.BUILDING.value,
                location=object_key(source.project_id, backup_id),
                store=rt.settings.store_config.kind,
                container=rt.settings.store_config.container,
                data_key_sealed=rt.sealer.seal(new_data_key()),
                created=now,
                updated=now,
            )
        )
    return backup_id


@DBOS.step()
def discard_seed(backup_id: str) -> str:
    """Hand the seed backup to a delete workflow (FAILED first if it never completed);
    that workflow's id."""
    rt = current()
    workflow_id = f"{DELETE_PREFIX}{backup_id}-seed"
    with rt.sessions.begin() as s:
        seed = s.get(Backup, backup_id)
        assert seed is not None
        if seed.state != BackupState.COMPLETED.value:
            seed.state = BackupState.FAILED.value
            seed.fail_reason = "the replica it seeded was not created"
        seed.workflow_id = workflow_id
        seed.updated = utcnow()
    return workflow_id


@DBOS.step()
def seed_restore(backup_id: str) -> dict[str, Any]:
    rt = current()
    with rt.sessions() as s:
        seed = s.get(Backup, backup_id)
        assert seed is not None
        return restore_payload(rt, [seed])


@DBOS.step()
def ensure_payload(
    source_id: str,
    facts: dict[str, str],
    positions: dict[str, str],
    restore: dict[str, Any] | None,
) -> str:
    """The replica's ENSURE extras, sealed: no initial objects (they come from the
    source), the seed to restore, and what to follow."""
    rt = current()
    extras: dict[str, Any] = {
        "databases": [],
        "users": [],
        "follow": upstream(source_id, facts, positions),
    }
    if restore is not None:
        extras["restore"] = restore
    return rt.sealer.seal(json.dumps(extras).encode())


def upstream(source_id: str, facts: dict[str, str], seed: dict[str, str]) -> dict[str, Any]:
    """``payload["follow"]`` for a replica of ``source_id`` (holds the password)."""
    rt = current()
    with rt.sessions() as s:
        row = s.execute(
            select(Instance.port, Host.address)
            .join(Host, Host.id == Instance.host_id)
            .where(Instance.id == source_id)
        ).one()
    return {
        "host": row.address,
        "port": row.port,
        "user": REPLICATION_USER,
        "password": _secret(source_id),
        "facts": facts,
        "seed": seed,
    }


@observed_workflow(name="replica.detach")
def detach_replica(workflow_id: str, replica_id: str) -> None:
    """Promote the replica to a standalone instance; its former source forgets it."""
    try:
        promoted = f"{workflow_id}:promote"
        send_command(promoted, replica_id, CommandKind.PROMOTE.value, {})
        await_command(promoted, replica_id)
        source_id = leave_set(replica_id)
        if source_id is not None:
            closed = f"{workflow_id}:close-source"
            args = {"replica_id": replica_id}
            send_command(closed, source_id, CommandKind.REPLICATION_CLOSE.value, {}, args=args)
            try:
                await_command(closed, replica_id)
            except Exception as exc:  # the replica is detached; a leftover slot is logged
                DBOS.logger.warning(
                    "source %s kept what it held for %s: %s", source_id, replica_id, exc
                )
        finish_task(replica_id, workflow_id)
    except Exception as exc:
        message, details = describe(exc)
        fail_task(
            replica_id, workflow_id, TaskStatus.NONE.value, f"detach failed: {message}", details
        )


@DBOS.step()
def leave_set(replica_id: str) -> str | None:
    """Record that the replica follows no one; its former source."""
    rt = current()
    with rt.sessions.begin() as s:
        replica = s.get(Instance, replica_id)
        assert replica is not None
        source = replica.replica_of_id
        s.execute(
            update(Instance)
            .where(Instance.id == replica_id)
            .values(replica_of_id=None, replication_json=None, updated=utcnow())
        )
    return source


@observed_workflow(name="replica.promote")
def promote_replica(workflow_id: str, candidate_id: str) -> None:
    """Planned switchover to ``candidate_id``: fence the source, let the candidate catch
    up with its final position, promote it, make the old source and the siblings its
    replicas. A failure before the promotion lifts the fence and changes nothing."""
    source_id, siblings = members_of(candidate_id)
    everyone = [source_id, candidate_id, *siblings]
    try:
        fenced = f"{workflow_id}:fence"
        send_command(fenced, source_id, CommandKind.FENCE.value, {})
        final = int(await_command(fenced, candidate_id)["position"])
        caught = f"{workflow_id}:catch-up"
        wait = {"position": final, "timeout_s": CATCH_UP_TIMEOUT_S}
        send_command(caught, candidate_id, CommandKind.CATCH_UP.value, {}, args=wait)
        await_command(caught, candidate_id)
    except Exception as exc:
        message, details = describe(exc)
        lift = f"{workflow_id}:unfence"
        send_command(lift, source_id, CommandKind.PROMOTE.value, {})
        try:
            await_command(lift, candidate_id)
        finally:
            for member in everyone:
                finish_task(member, workflow_id)
            record_fault(candidate_id, f"promotion failed, nothing changed: {message}", details)
        return
    _take_over(workflow_id, candidate_id, source_id, siblings, old_source_alive=True)


@observed_workflow(name="replica.eject")
def eject_source(workflow_id: str, source_id: str, reason: str = "ejected") -> None:
    """The source is lost: promote its most advanced replica, re-point the others, and
    leave the old source a replica of the new one (queued for when its host returns:
    its agent holds it back until then, and following makes it read-only)."""
    try:
        candidate_id = most_advanced(source_id)
    except Exception as exc:
        message, details = describe(exc)
        for member in members_claimed(workflow_id):
            finish_task(member, workflow_id)
        record_fault(source_id, f"{reason} failed: {message}", details)
        return
    siblings = members_of(candidate_id)[1]
    _take_over(workflow_id, candidate_id, source_id, siblings, old_source_alive=False, why=reason)


def _take_over(
    workflow_id: str,
    candidate_id: str,
    source_id: str,
    siblings: list[str],
    *,
    old_source_alive: bool,
    why: str = "",
) -> None:
    try:
        promoted = f"{workflow_id}:promote"
        send_command(promoted, candidate_id, CommandKind.PROMOTE.value, {})
        await_command(promoted, candidate_id)
    except Exception as exc:
        message, details = describe(exc)
        for member in [source_id, candidate_id, *siblings]:
            finish_task(member, workflow_id)
        record_fault(candidate_id, f"promotion failed: {message}", details)
        return
    switch_roles(candidate_id, source_id, siblings)
    for member in siblings:
        _repoint(workflow_id, member, candidate_id, wait=True)
    _repoint(workflow_id, source_id, candidate_id, wait=old_source_alive)
    if not old_source_alive:
        record_fault(
            source_id,
            f"{why}: {candidate_id} took over as source; this instance follows it once its "
            "host is back",
            "",
        )
    for member in [source_id, candidate_id, *siblings]:
        finish_task(member, workflow_id)


def _repoint(workflow_id: str, member: str, source_id: str, *, wait: bool) -> None:
    """Make ``member`` a replica of ``source_id``; a failure is recorded on it. Without
    ``wait`` (a lost member) a workflow of its own waits for the member's host to come
    back and records a failed rejoin."""
    try:
        opened = f"{workflow_id}:open-{member}"
        send_command(opened, source_id, CommandKind.REPLICATION_OPEN.value, {}, grant(member))
        facts = await_command(opened, source_id)["facts"]
        followed = f"{workflow_id}:follow-{member}"
        send_command(
            followed, member, CommandKind.FOLLOW.value, {}, follow_payload(source_id, facts)
        )
        if wait:
            await_command(followed, member)
        else:
            with SetWorkflowID(f"{followed}:rejoin"):
                DBOS.start_workflow(await_rejoin, member, source_id, followed)
    except Exception as exc:
        message, details = describe(exc)
        record_fault(member, f"could not follow the new source {source_id}: {message}", details)


@observed_workflow(name="replica.rejoin")
def await_rejoin(member: str, source_id: str, command_id: str) -> None:
    """Wait (durably, polling every ``REJOIN_POLL_S``, for up to ``REJOIN_WAIT_S``) for a
    lost former source to follow ``source_id``; record a failure on it (it must then be
    replaced by a new replica)."""
    waited = 0.0
    while waited < REJOIN_WAIT_S:
        failure = command_failure(command_id)
        if failure is None:
            DBOS.sleep(REJOIN_POLL_S)
            waited += REJOIN_POLL_S
            continue
        if failure:
            record_fault(
                member,
                f"could not rejoin as a replica of {source_id}: {failure}; replace it with a "
                "new replica",
                "",
            )
        return
    record_fault(member, f"its host did not come back within {REJOIN_WAIT_S / 3600:.0f} h", "")


@DBOS.step()
def command_failure(command_id: str) -> str | None:
    """None while the command runs, "" once it succeeded, else its error message."""
    try:
        return None if CommandBus(current()).outcome(command_id) is None else ""
    except CofferError as exc:
        return exc.message


@DBOS.step()
def members_of(replica_id: str) -> tuple[str, list[str]]:
    """The replica's source and its other replicas."""
    rt = current()
    with rt.sessions() as s:
        replica = s.get(Instance, replica_id)
        assert replica is not None and replica.replica_of_id is not None
        source = replica.replica_of_id
        others = s.scalars(
            select(Instance.id).where(
                Instance.replica_of_id == source,
                Instance.deleted.is_(False),
                Instance.id != replica_id,
            )
        ).all()
    return source, list(others)


@DBOS.step()
def members_claimed(workflow_id: str) -> list[str]:
    rt = current()
    with rt.sessions() as s:
        return list(s.scalars(select(Instance.id).where(Instance.task_workflow_id == workflow_id)))


@DBOS.step()
def most_advanced(source_id: str) -> str:
    """The replica of ``source_id`` with the largest reported position."""
    rt = current()
    with rt.sessions() as s:
        rows = s.execute(
            select(Instance.id, Instance.replication_json).where(
                Instance.replica_of_id == source_id, Instance.deleted.is_(False)
            )
        ).all()
    ranked = sorted(
        rows, key=lambda r: int(json.loads(r.replication_json or "{}").get("position") or 0)
    )
    if not ranked:
        raise ValueError(f"instance {source_id} has no replica to take over")
    return str(ranked[-1].id)


@DBOS.step()
def switch_roles(candidate_id: str, source_id: str, siblings: list[str]) -> None:
    """Record the new replica set: the candidate is the source (with the old source's
    replication account and failover setting), everyone else follows it."""
    rt = current()
    with rt.sessions.begin() as s:
        old = s.get(Instance, source_id)
        assert old is not None
        secret, auto = old.replication_secret_sealed, old.auto_failover
        now = utcnow()
        s.execute(
            update(Instance)
            .where(Instance.id == candidate_id)
            .values(
                replica_of_id=None,
                replication_secret_sealed=secret,
                auto_failover=auto,
                replication_json=None,
                updated=now,
            )
        )
        s.execute(
            update(Instance)
            .where(Instance.id.in_([source_id, *siblings]))
            .values(replica_of_id=candidate_id, auto_failover=False, updated=now)
        )


@DBOS.step()
def follow_payload(source_id: str, facts: dict[str, str]) -> str:
    rt = current()
    return rt.sealer.seal(json.dumps({"follow": upstream(source_id, facts, {})}).encode())


@DBOS.step()
def record_fault(instance_id: str, message: str, details: str) -> None:
    rt = current()
    now = utcnow()
    with rt.sessions.begin() as s:
        s.execute(
            update(Instance)
            .where(Instance.id == instance_id)
            .values(fault_message=message, fault_details=details, fault_created=now, updated=now)
        )


def start_promote(workflow_id: str, candidate_id: str) -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(promote_replica, workflow_id, candidate_id)


def start_eject(workflow_id: str, source_id: str, *, reason: str = "ejected") -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(eject_source, workflow_id, source_id, reason)


def start_create_replica(replica_id: str) -> None:
    with SetWorkflowID(f"create-{replica_id}"):
        DBOS.start_workflow(create_replica, replica_id)


def start_detach(workflow_id: str, replica_id: str) -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(detach_replica, workflow_id, replica_id)
