"""Per-project quotas on instances, RAM (MB), volume gigabytes and backups.

``check`` runs inside the transaction that creates or grows the resource, after the
project row has been locked, so two concurrent requests cannot both slip under a limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from coffer.contracts.api_v1 import MAX_INT
from coffer.db.models import Backup, Flavor, Instance, Project, Quota
from coffer.domain.states import TaskStatus
from coffer.errors import BadRequest, NotFound, OverLimit
from coffer.services.runtime import Runtime

RESOURCES = ("instances", "ram", "volumes", "backups")


@dataclass(frozen=True)
class Usage:
    instances: int = 0
    ram: int = 0
    volumes: int = 0
    backups: int = 0

    def get(self, resource: str) -> int:
        return int(getattr(self, resource, 0))


def defaults(rt: Runtime) -> dict[str, int]:
    st = rt.settings
    return {
        "instances": st.default_quota_instances,
        "ram": st.default_quota_ram_mb,
        "volumes": st.default_quota_volumes_gb,
        "backups": st.default_quota_backups,
    }


def limits(rt: Runtime, s: Session, project_id: str) -> dict[str, int]:
    out = defaults(rt)
    for row in s.scalars(select(Quota).where(Quota.project_id == project_id)):
        out[row.resource] = row.hard_limit
    return out


def usage(s: Session, project_id: str) -> Usage:
    row = s.execute(
        select(func.count(Instance.id), func.sum(Flavor.ram_mb), func.sum(Instance.volume_gb))
        .join(Flavor, Flavor.id == Instance.flavor_id)
        .where(
            Instance.project_id == project_id,
            Instance.deleted.is_(False),
            Instance.task_status != TaskStatus.DELETING.value,
        )
    ).one()
    backups = s.scalar(
        select(func.count(Backup.id)).where(
            Backup.project_id == project_id, Backup.deleted.is_(False)
        )
    )
    return Usage(int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), int(backups or 0))


def lock_project(s: Session, project_id: str) -> None:
    """Serialise quota-affected writes of one project (row lock / SQLite write lock)."""
    s.execute(update(Project).where(Project.id == project_id).values(name=Project.name))


def check(rt: Runtime, s: Session, project_id: str, delta: dict[str, int]) -> None:
    """Raise OverLimit (413) if adding ``delta`` would exceed a limit. Lock first."""
    lims = limits(rt, s, project_id)
    used = usage(s, project_id)
    over = [
        f"{res} (limit {lims[res]}, in use {used.get(res)}, requested {amount})"
        for res, amount in delta.items()
        if amount > 0 and lims.get(res, -1) >= 0 and used.get(res) + amount > lims[res]
    ]
    if over:
        raise OverLimit("Quota exceeded for resources: " + ", ".join(over))


def current_limits(rt: Runtime, project_id: str) -> dict[str, int]:
    with rt.sessions() as s:
        return limits(rt, s, project_id)


def show(rt: Runtime, project_id: str) -> list[dict[str, object]]:
    with rt.sessions() as s:
        if s.get(Project, project_id) is None:
            raise NotFound(f"project {project_id} not found")
        lims = limits(rt, s, project_id)
        used = usage(s, project_id)
        return [
            {"resource": r, "in_use": used.get(r), "reserved": 0, "limit": lims[r]}
            for r in RESOURCES
        ]


def update_limits(rt: Runtime, project_id: str, values: dict[str, object]) -> dict[str, int]:
    clean: dict[str, int] = {}
    for resource, value in values.items():
        if resource not in RESOURCES:
            raise BadRequest(f"unknown quota resource {resource!r}; known: {', '.join(RESOURCES)}")
        if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value <= MAX_INT:
            raise BadRequest(
                f"quota {resource} must be an integer >= -1 (-1 is unlimited) and <= {MAX_INT}"
            )
        clean[resource] = value
    if not clean:
        raise BadRequest('no quota given; expected e.g. {"quotas": {"instances": 5}}')
    with rt.sessions.begin() as s:
        if s.get(Project, project_id) is None:
            raise NotFound(f"project {project_id} not found")
        for resource, value in clean.items():
            row = s.get(Quota, (project_id, resource))
            if row is None:
                s.add(Quota(project_id=project_id, resource=resource, hard_limit=value))
            else:
                row.hard_limit = value
    return clean
