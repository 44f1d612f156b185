"""Trove-shaped JSON views. Pure functions of loaded records; no queries here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from coffer.clock import isoformat
from coffer.contracts.engine import ParameterRule
from coffer.db.models import BackupSchedule, BackupStrategy, Datastore, DatastoreVersion, Flavor
from coffer.domain.states import (
    CLUSTER_TASK_IDS,
    BackupState,
    ClusterTask,
    PublicStatus,
    ServiceStatus,
    StatusInputs,
    TaskStatus,
    public_status,
)
from coffer.services.backup_records import BackupRecord
from coffer.services.cluster_records import ClusterRecord, membership
from coffer.services.configurations import ConfigurationRecord
from coffer.services.records import InstanceRecord

_GB = 1024**3


@dataclass(frozen=True)
class ViewContext:
    """What every view needs from the request: where links point, who asks, when."""

    host: str
    project_id: str
    is_admin: bool
    now: datetime
    heartbeat_expiry: timedelta

    def links(self, collection: str, rid: str) -> list[dict[str, str]]:
        return [
            {
                "href": f"https://{self.host}/v1.0/{self.project_id}/{collection}/{rid}",
                "rel": "self",
            },
            {"href": f"https://{self.host}/{collection}/{rid}", "rel": "bookmark"},
        ]


def flavor_id_value(fid: str) -> int | None:
    return int(fid) if fid.isdigit() and (fid == "0" or not fid.startswith("0")) else None


def flavor(ctx: ViewContext, f: Flavor) -> dict[str, Any]:
    return {
        "id": flavor_id_value(f.id),
        "str_id": f.id,
        "name": f.name,
        "ram": f.ram_mb,
        "vcpus": f.vcpus,
        "disk": f.disk_gb,
        "ephemeral": 0,
        "links": ctx.links("flavors", f.id),
    }


def version(ctx: ViewContext, v: DatastoreVersion, *, admin: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": v.id,
        "name": v.name,
        "version": v.version,
        "datastore": v.datastore_id,
        "links": ctx.links("datastores/versions", v.id),
    }
    if admin:
        out.update(
            active=v.active, datastore_manager=v.manager, packages=[], image=None, image_tags=[]
        )
    return out


def datastore(ctx: ViewContext, ds: Datastore, versions: list[DatastoreVersion]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": ds.id,
        "name": ds.name,
        "links": ctx.links("datastores", ds.id),
        "versions": [
            {
                "id": v.id,
                "name": v.name,
                "version": v.version,
                "links": ctx.links("datastores/versions", v.id),
            }
            for v in versions
        ],
    }
    if ds.default_version_id and any(v.id == ds.default_version_id for v in versions):
        out["default_version"] = ds.default_version_id
    return out


def _status(ctx: ViewContext, rec: InstanceRecord) -> PublicStatus:
    return public_status(
        StatusInputs(
            task_status=TaskStatus(rec.instance.task_status),
            service_status=ServiceStatus(rec.instance.service_status),
            last_heartbeat=rec.host.last_heartbeat,
            now=ctx.now,
            heartbeat_expiry=ctx.heartbeat_expiry,
        )
    )


def instance(ctx: ViewContext, rec: InstanceRecord, *, detail: bool) -> dict[str, Any]:
    inst = rec.instance
    st = _status(ctx, rec)
    address = rec.host.address
    out: dict[str, Any] = {
        "id": inst.id,
        "name": inst.name,
        "status": st.status,
        "operating_status": st.operating_status,
        "links": ctx.links("instances", inst.id),
        "flavor": {"id": rec.flavor.id, "links": ctx.links("flavors", rec.flavor.id)},
        "datastore": {"type": rec.datastore.name, "version": rec.version.name},
        "region": "RegionOne",
        "access": {"is_public": False, "allowed_cidrs": []},
        "volume": {"size": inst.volume_gb},
        "ip": [address],
        "addresses": [{"address": address, "type": "private", "network": "coffer"}],
        "port": inst.port,
    }
    if inst.replica_of_id:
        out["replica_of"] = {
            "id": inst.replica_of_id,
            "links": ctx.links("instances", inst.replica_of_id),
        }
    if rec.replicas:
        out["replicas"] = [{"id": r, "links": ctx.links("instances", r)} for r in rec.replicas]
    if inst.cluster_id:
        out["cluster_id"] = inst.cluster_id
        out["type"] = membership(inst).role
    if ctx.is_admin:
        out["tenant_id"] = inst.project_id
    if not detail:
        return out
    out.update(
        created=isoformat(inst.created),
        updated=isoformat(inst.updated),
        service_status_updated=isoformat(inst.service_status_updated),
        hostname=address,
    )
    out["datastore"]["version_number"] = rec.version.version
    if inst.volume_used_bytes is not None and st.status not in (
        "BUILD",
        "REBOOT",
        "RESIZE",
        "ERROR",
    ):
        used = round(inst.volume_used_bytes / _GB, 3)
        out["volume"]["used"] = used
        out["volume"]["used_percent"] = (
            round(100 * used / inst.volume_gb, 2) if inst.volume_gb else 0
        )
    if inst.fault_message and inst.fault_created:
        out["fault"] = {
            "message": inst.fault_message,
            "created": isoformat(inst.fault_created),
            "details": inst.fault_details or "",
        }
    if rec.configuration is not None:
        cfg = rec.configuration
        out["configuration"] = {
            "id": cfg.id,
            "name": cfg.name,
            "links": ctx.links("configurations", cfg.id),
        }
    if rec.replicas or inst.auto_failover:
        out["auto_failover"] = inst.auto_failover  # Coffer extension
    if rec.replication_role and inst.replication_json:
        # Coffer extension: what the engine reports of its replication
        out["replication"] = replication_view(json.loads(inst.replication_json))
    if rec.restorable_from is not None and inst.restorable_until is not None:
        # Coffer extension: the window of restorePoint.restore_time
        out["earliest_restorable_time"] = isoformat(rec.restorable_from)
        out["latest_restorable_time"] = isoformat(inst.restorable_until)
    if ctx.is_admin:
        out["server_id"] = rec.host.id
        out["volume_id"] = inst.id
    return out


def cluster(ctx: ViewContext, rec: ClusterRecord) -> dict[str, Any]:
    """Trove's cluster view, every member with its status (Heat's ``OS::Trove::Cluster``
    waits for all to be ACTIVE), flavor, volume, address and port."""
    c = rec.cluster
    task = ClusterTask(c.task_status)
    members = []
    for member in rec.members:
        inst = member.instance
        info = membership(inst)
        entry = {
            "id": inst.id,
            "name": inst.name,
            "type": info.role,
            "status": _status(ctx, member).status,
            "links": ctx.links("instances", inst.id),
            "flavor": {"id": member.flavor.id, "links": ctx.links("flavors", member.flavor.id)},
            "volume": {"size": inst.volume_gb},
            "ip": [member.host.address],
            "port": inst.port,
        }
        if info.follows:
            entry["master"] = info.follows  # Coffer extension: a Redis replica's master
        members.append(entry)
    out: dict[str, Any] = {
        "id": c.id,
        "name": c.name,
        "task": {"id": CLUSTER_TASK_IDS[task], "name": task.value, "description": task.description},
        "created": isoformat(c.created),
        "updated": isoformat(c.updated),
        "links": ctx.links("clusters", c.id),
        "datastore": {
            "type": rec.datastore.name,
            "version": rec.version.name,
            "version_number": rec.version.version,
        },
        "instances": members,
        "ip": sorted({m.host.address for m in rec.members}),
    }
    if c.fault_message and c.fault_created:
        out["fault"] = {"message": c.fault_message, "created": isoformat(c.fault_created)}
    if ctx.is_admin:
        out["tenant_id"] = c.project_id
    return out


def replication_view(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": state.get("role"),
        "streaming": state.get("streaming"),
        "lag_seconds": state.get("lag_s"),
        "position": state.get("position"),
        "detail": state.get("detail", ""),
    }


def parameter(v: DatastoreVersion, rule: ParameterRule) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": rule.name,
        "datastore_version_id": v.id,
        "restart_required": rule.restart_required,
        "type": rule.type,
    }
    if rule.min is not None:
        out["min"] = rule.min
    if rule.max is not None:
        out["max"] = rule.max
    if rule.choices is not None:
        out["choices"] = list(rule.choices)
    if rule.description:
        out["description"] = rule.description
    return out


_SECRET_KEY = ("password", "secret", "pass")


def configuration(ctx: ViewContext, rec: ConfigurationRecord, *, detail: bool) -> dict[str, Any]:
    cfg = rec.configuration
    out: dict[str, Any] = {
        "id": cfg.id,
        "name": cfg.name,
        "description": cfg.description,
        "created": isoformat(cfg.created),
        "updated": isoformat(cfg.updated),
        "datastore_name": rec.datastore.name,
        "datastore_version_id": rec.version.id,
        "datastore_version_name": rec.version.name,
        "datastore_version_number": rec.version.version,
        "links": ctx.links("configurations", cfg.id),
    }
    if detail:
        out["values"] = {
            k: ("***" if any(s in k.lower() for s in _SECRET_KEY) else v)
            for k, v in rec.values.items()
        }
        out["instance_count"] = rec.instance_count
    return out


def paginate(
    items: list[Any], limit: int | None, marker: str | None, next_url: str, key: str = "id"
) -> tuple[list[Any], list[dict[str, str]]]:
    """Trove's limit/marker pagination; returns the page and its ``links``."""
    start = 0
    if marker:
        for i, item in enumerate(items):
            if str(item[key]) == marker:
                start = i + 1
                break
    if limit is None or limit <= 0:
        return items[start:], []
    page = items[start : start + limit]
    if start + limit < len(items) and page:
        sep = "&" if "?" in next_url else "?"
        href = f"{next_url}{sep}limit={limit}&marker={page[-1][key]}"
        return page, [{"rel": "next", "href": href.replace("http://", "https://", 1)}]
    return page, []


def backup(rec: BackupRecord) -> dict[str, Any]:
    """Trove's backup view, plus Coffer's ``raw_size``/``checksum``/``fail_reason``."""
    b = rec.backup
    completed = b.state == BackupState.COMPLETED.value
    out: dict[str, Any] = {
        "id": b.id,
        "name": b.name,
        "description": b.description or None,
        "locationRef": f"{b.store}/{b.location}" if completed else None,
        "instance_id": b.instance_id,
        "created": isoformat(b.created),
        "updated": isoformat(b.updated),
        "size": round(b.size_bytes / 1024**3, 6) if b.size_bytes is not None else None,
        "status": b.state,
        "parent_id": b.parent_id,
        "project_id": b.project_id,
        "datastore": {
            "type": rec.datastore_name,
            "version": rec.version.name,
            "version_id": rec.version.id,
        },
        "raw_size": b.raw_bytes,
        "checksum": b.checksum,
    }
    if b.state == BackupState.BUILDING.value:
        out["progress_bytes"] = b.progress_bytes
    if b.fail_reason:
        out["fail_reason"] = b.fail_reason
    out["verification"] = {
        "status": b.verify_status,
        "detail": b.verify_detail,
        "verified_at": isoformat(b.verified_at) if b.verified_at else None,
    }
    return out


def backup_schedule(ctx: ViewContext, sched: BackupSchedule) -> dict[str, Any]:
    return {
        "id": sched.id,
        "name": sched.name,
        "instance_id": sched.instance_id,
        "project_id": sched.project_id,
        "full": sched.full_cron,
        "incremental": sched.incremental_cron,
        "retention": sched.retention,
        "last_run": sched.last_run,
        "last_run_at": isoformat(sched.last_run_at) if sched.last_run_at else None,
        "created": isoformat(sched.created),
        "links": ctx.links("backup_schedules", sched.id),
    }


def backup_strategy(strategy: BackupStrategy) -> dict[str, Any]:
    return {
        "project_id": strategy.project_id,
        "instance_id": strategy.instance_id,
        "backend": strategy.backend,
        "swift_container": strategy.swift_container,
    }
