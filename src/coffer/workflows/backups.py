"""Backup workflows: take one (the instance's agent streams it to the object store) and
delete some (children first).

Taking a backup owns the instance's task (BACKUP) from the claim until it ends; it always
ends with the backup COMPLETED or FAILED and the task given back, also after a crash of
the server (DBOS resumes it) or of the agent (the command is delivered again and the
agent streams the backup again, replacing any partial object).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import uuid
from datetime import UTC, timedelta
from typing import Any

from dbos import DBOS, SetWorkflowID
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from coffer.clock import utcnow
from coffer.contracts.agent_v1 import CommandKind
from coffer.contracts.engine import InstanceSpec
from coffer.db.models import Backup, Host, PortLease
from coffer.domain.states import BackupState, VerifyStatus
from coffer.services import events, log_archives, placement
from coffer.services.backup_records import (
    chain_of,
    load,
    manifest,
    object_key,
    restore_payload,
    store_of,
)
from coffer.services.commands import CommandBus
from coffer.storage import open_store
from coffer.workflows.observe import observed_workflow
from coffer.workflows.runtime import current
from coffer.workflows.steps import (
    RECORDING_STEP,
    await_command,
    describe,
    finish_task,
    send_command,
)

log = logging.getLogger("coffer.workflows.backups")

#: memory of the throwaway instance a verification restores into
_VERIFY_RAM_MB = 512


@observed_workflow(name="backup.take")
def take_backup(workflow_id: str, backup_id: str, instance_id: str, restart_pending: bool) -> None:
    cid = f"{workflow_id}:stream"
    try:
        sealed = backup_payload(backup_id)
        set_state(backup_id, BackupState.BUILDING.value, None)
        send_command(cid, instance_id, CommandKind.BACKUP.value, {}, sealed)
        result = await_command(cid, instance_id)
    except Exception as exc:
        message, _ = describe(exc)
        set_state(backup_id, BackupState.FAILED.value, message)
        return
    finally:
        # the instance is free again before the backup shows COMPLETED: a client that
        # waits for COMPLETED may act on the instance at once
        finish_task(instance_id, workflow_id, restart_required=restart_pending)
    try:
        complete(backup_id, result)
    except Exception as exc:
        message, _ = describe(exc)
        set_state(backup_id, BackupState.FAILED.value, f"recording the backup failed: {message}")
        return
    if current().settings.verify_backups:
        start_verify(f"verify-{backup_id}", backup_id)


@DBOS.step()
def backup_payload(backup_id: str) -> str:
    """The agent's instructions, sealed (they hold the data key and store credentials)."""
    rt = current()
    with rt.sessions() as s:
        b = s.get(Backup, backup_id)
        assert b is not None
        parent = s.get(Backup, b.parent_id) if b.parent_id else None
        payload = {
            "backup": {
                "id": b.id,
                "location": b.location,
                "data_key": base64.b64encode(rt.sealer.open(b.data_key_sealed)).decode(),
                "parent": json.loads(parent.positions_json) if parent else None,
            },
            "store": store_of(rt, b).model_dump(),
        }
    return rt.sealer.seal(json.dumps(payload).encode())


def backup_event(s: Session, backup_id: str, action: str, outcome: str, detail: str) -> None:
    b = s.get(Backup, backup_id)
    if b is not None:
        events.record(
            s,
            project_id=b.project_id,
            action=action,
            resource_type="backup",
            resource_id=backup_id,
            outcome=outcome,
            detail=detail,
        )


@RECORDING_STEP
def set_state(backup_id: str, state: str, reason: str | None) -> None:
    rt = current()
    with rt.sessions.begin() as s:
        if state == BackupState.FAILED.value:
            backup_event(s, backup_id, "backup.create", "failed", reason or "")
        s.execute(
            update(Backup)
            .where(Backup.id == backup_id)
            .values(state=state, fail_reason=reason, updated=utcnow())
        )


@RECORDING_STEP
def complete(backup_id: str, result: dict[str, Any]) -> None:
    """Record what the agent stored, write the manifest beside the data, then mark the
    backup COMPLETED (a backup is never COMPLETED without its manifest)."""
    rt = current()
    with rt.sessions.begin() as s:
        b = s.get(Backup, backup_id)
        assert b is not None
        b.size_bytes = int(result["size"])
        b.raw_bytes = int(result["raw_size"])
        b.checksum = str(result["sha256"])
        b.positions_json = json.dumps(result.get("positions", {}), sort_keys=True)
        b.counts_json = json.dumps(result.get("counts", {}), sort_keys=True)
        b.counts_exact = bool(result.get("counts_exact", False))
        b.progress_bytes = b.raw_bytes
        b.updated = utcnow()
    with rt.sessions() as s:
        rec = load(s, backup_id, None)
    document = json.dumps(manifest(rec), indent=2, sort_keys=True).encode()
    open_store(store_of(rt, rec.backup)).put(
        object_key(rec.backup.project_id, backup_id, "manifest.json"), [document]
    )
    with rt.sessions.begin() as s:
        backup_event(s, backup_id, "backup.create", "done", "")
        s.execute(
            update(Backup)
            .where(Backup.id == backup_id)
            .values(state=BackupState.COMPLETED.value, updated=utcnow())
        )


@observed_workflow(name="backup.delete")
def delete_backups(workflow_id: str, backup_ids: list[str]) -> None:
    """Delete each backup's objects, then its record, in the given order (children
    first); a failure leaves that backup DELETE_FAILED and stops (its parents stay)."""
    for backup_id in backup_ids:
        try:
            instance_id = delete_objects(backup_id)
        except Exception as exc:
            message, _ = describe(exc)
            set_state(backup_id, BackupState.DELETE_FAILED.value, f"delete failed: {message}")
            return
        prune_logs(instance_id)


@DBOS.step()
def delete_objects(backup_id: str) -> str | None:
    """Purge the backup's objects and mark it deleted; its instance's id."""
    rt = current()
    with rt.sessions() as s:
        b = s.get(Backup, backup_id)
        if b is None or b.deleted:
            return b.instance_id if b is not None else None
        prefix = b.location.rsplit("/", 1)[0] + "/"
        store = open_store(store_of(rt, b))
    store.purge(prefix)
    with rt.sessions.begin() as s:
        s.execute(
            update(Backup).where(Backup.id == backup_id).values(deleted=True, updated=utcnow())
        )
    return b.instance_id


@DBOS.step()
def prune_logs(instance_id: str | None) -> None:
    """Drop the instance's shipped log that no remaining backup can use (see
    ``log_archives.prune``); a failure is logged, the next deletion tries again."""
    if instance_id is None:
        return
    try:
        log_archives.prune(current(), instance_id)
    except Exception:
        log.exception("pruning the shipped log of instance %s failed", instance_id)


@observed_workflow(name="backup.verify")
def verify_backup(workflow_id: str, backup_id: str) -> None:
    """Restore the backup into a throwaway instance on a host of its engine, run the
    engine's checks and compare the counts recorded at backup time; record the result
    on the backup. A failure is loud: status FAILED with the finding, logged as an error."""
    cid = f"{workflow_id}:check"
    throwaway = str(uuid.uuid5(uuid.NAMESPACE_URL, workflow_id))
    try:
        host_id = begin_verification(backup_id, throwaway)
        send_verification(cid, backup_id, throwaway, host_id)
        outcome = await_verification(cid)
        record_verification(backup_id, bool(outcome["ok"]), str(outcome["detail"]))
    except Exception as exc:
        message, _ = describe(exc)
        record_verification(backup_id, False, f"the verification could not run: {message}")
    finally:
        end_verification(throwaway)


@DBOS.step()
def begin_verification(backup_id: str, throwaway: str) -> str:
    """Choose a host of the backup's engine and lease a port for the throwaway."""
    rt = current()
    expiry = timedelta(seconds=rt.settings.heartbeat_expiry_s)
    with rt.sessions.begin() as s:
        rec = load(s, backup_id, None)
        lease = s.scalar(select(PortLease).where(PortLease.instance_id == throwaway))
        if lease is None:
            host = placement.choose_host(s, rec.version.manager, rec.version.version, expiry)
            placement.lease_port(s, host, throwaway)
            host_id = host.id
        else:
            host_id = lease.host_id
        rec.backup.verify_status = VerifyStatus.RUNNING.value
        rec.backup.verify_detail = None
    return host_id


@DBOS.step()
def send_verification(command_id: str, backup_id: str, throwaway: str, host_id: str) -> None:
    rt = current()
    with rt.sessions() as s:
        rec = load(s, backup_id, None)
        chain = chain_of(s, rec.backup)
        host = s.get(Host, host_id)
        port = s.scalar(select(PortLease.port).where(PortLease.instance_id == throwaway))
        assert host is not None and port is not None
        raw = sum(b.raw_bytes or 0 for b in chain)
        spec = InstanceSpec(
            instance_id=throwaway,
            engine=rec.version.manager,
            version=rec.version.version,
            port=port,
            bind_host="127.0.0.1",
            ram_mb=_VERIFY_RAM_MB,
            vcpus=1,
            volume_gb=1 + math.ceil(raw * 1.5 / 1024**3),
        )
        payload = {
            "spec": spec.model_dump(),
            "restore": restore_payload(rt, chain),
            "counts": json.loads(rec.backup.counts_json or "{}"),
            "counts_exact": rec.backup.counts_exact,
            # the agent gives up first, so its throwaway is gone before the port is freed
            "deadline": (utcnow() + timedelta(seconds=rt.settings.backup_timeout_s * 0.9))
            .replace(tzinfo=UTC)
            .timestamp(),
        }
    CommandBus(rt).submit(
        command_id=command_id,
        host_id=host_id,
        instance_id=throwaway,
        kind=CommandKind.VERIFY_BACKUP,
        payload=payload,
    )


@DBOS.step()
def await_verification(command_id: str) -> dict[str, Any]:
    rt = current()
    deadline = utcnow() + timedelta(seconds=rt.settings.backup_timeout_s)
    return CommandBus(rt).wait(command_id, deadline)


@RECORDING_STEP
def record_verification(backup_id: str, ok: bool, detail: str) -> None:
    rt = current()
    if not ok:
        log.error("backup %s failed its verification: %s", backup_id, detail)
    with rt.sessions.begin() as s:
        backup_event(s, backup_id, "backup.verify", "done" if ok else "failed", detail)
        s.execute(
            update(Backup)
            .where(Backup.id == backup_id)
            .values(
                verify_status=(VerifyStatus.VERIFIED if ok else VerifyStatus.FAILED).value,
                verify_detail=detail[:2000],
                verified_at=utcnow(),
            )
        )


@DBOS.step()
def end_verification(throwaway: str) -> None:
    rt = current()
    with rt.sessions.begin() as s:
        s.execute(delete(PortLease).where(PortLease.instance_id == throwaway))


def start_backup(workflow_id: str, backup_id: str, instance_id: str, restart_pending: bool) -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(take_backup, workflow_id, backup_id, instance_id, restart_pending)


def start_delete(workflow_id: str, backup_ids: list[str]) -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(delete_backups, workflow_id, backup_ids)


def start_verify(workflow_id: str, backup_id: str) -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(verify_backup, workflow_id, backup_id)
