"""Trove's backup strategies: which container new backups of a project or of one instance
go to (the deployment's store stays the same; only its container or bucket changes)."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from coffer.clock import utcnow
from coffer.db.models import BackupStrategy
from coffer.errors import BadRequest, NotFound
from coffer.services import quotas, records
from coffer.services.runtime import Runtime

#: fits both Swift containers and S3 bucket names
_CONTAINER = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_container(rt: Runtime, name: str) -> str:
    """A container name new backups may use here (400 naming the rule otherwise)."""
    if rt.settings.store_config.kind == "directory":
        raise BadRequest(
            "this deployment keeps backups in a directory, which has no containers: "
            "omit swift_container"
        )
    if not _CONTAINER.match(name) or ".." in name:
        raise BadRequest(
            f"swift_container {name!r} is not a valid container name: 3-63 lowercase "
            "letters, digits, '.' or '-', starting and ending with a letter or digit"
        )
    return name


def container_for(rt: Runtime, s: Session, project_id: str, instance_id: str) -> str:
    """The container a new backup of the instance goes to: the instance's strategy, else
    the project's, else the deployment's."""
    found = s.scalars(
        select(BackupStrategy).where(
            BackupStrategy.project_id == project_id,
            (BackupStrategy.instance_id == instance_id) | BackupStrategy.instance_id.is_(None),
        )
    ).all()
    if not found:
        return rt.settings.store_config.container
    return min(found, key=lambda x: x.instance_id is None).swift_container


def create(
    rt: Runtime, project_id: str, scope_id: str | None, instance_id: str | None, container: str
) -> BackupStrategy:
    """Set (or replace) the strategy of the project or of one of its instances."""
    check_container(rt, container)
    with rt.sessions.begin() as s:
        # serialise the project's strategy writes: NULL instance ids are not unique in SQL
        quotas.lock_project(s, project_id)
        if instance_id is not None:
            instance_id = records.load(s, instance_id, scope_id).instance.id
        existing = s.scalar(_query(project_id, instance_id))
        if existing is not None:
            s.delete(existing)
            s.flush()
        strategy = BackupStrategy(
            id=str(uuid.uuid4()),
            project_id=project_id,
            instance_id=instance_id,
            backend="swift",
            swift_container=container,
            created=utcnow(),
        )
        s.add(strategy)
    return strategy


def list_all(rt: Runtime, project_id: str, instance_id: str | None) -> list[BackupStrategy]:
    q = select(BackupStrategy).where(BackupStrategy.project_id == project_id)
    if instance_id is not None:
        q = q.where(BackupStrategy.instance_id == instance_id)
    with rt.sessions() as s:
        return list(s.scalars(q.order_by(BackupStrategy.created)).all())


def delete(rt: Runtime, project_id: str, instance_id: str | None) -> None:
    with rt.sessions.begin() as s:
        quotas.lock_project(s, project_id)
        existing = s.scalar(_query(project_id, instance_id))
        if existing is None:
            target = f"instance {instance_id}" if instance_id else f"project {project_id}"
            raise NotFound(f"No backup strategy is set for {target}.")
        s.delete(existing)


def _query(project_id: str, instance_id: str | None) -> Select[BackupStrategy]:
    q = select(BackupStrategy).where(BackupStrategy.project_id == project_id)
    if instance_id is None:
        return q.where(BackupStrategy.instance_id.is_(None))
    return q.where(BackupStrategy.instance_id == instance_id)
