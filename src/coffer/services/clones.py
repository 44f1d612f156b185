"""Instant clones (Coffer extension): ``POST /instances`` with ``restorePoint``
``{"instanceRef": I}`` and no ``restore_time`` gives a new, independent instance with
I's data as of now.

The clone lives on the source's host: its agent freezes the source's XFS volume for the
moment of a reflink copy of its image (blocks are shared, so the cost does not grow with
the data), and the engine makes the copy its own (``Lifecycle.adopt_copy``); the copy is
crash-consistent and recovers at its first start. Hosts whose volumes are plain
directories cannot clone (501). A clone at a past moment is a point-in-time restore
(``restore_time``).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from coffer.db.models import DatastoreVersion, Host
from coffer.domain.states import SERVING, ServiceStatus, TaskStatus
from coffer.errors import BadRequest, NotImplementedByDatastore
from coffer.services import records

__all__ = ["CLONE_VOLUMES", "plan_clone"]

#: the volume mode (host fact "volumes") that can take instant clones
CLONE_VOLUMES = "xfs-loop"


def plan_clone(
    s: Session, project_id: str, source_id: str, volume_gb: int
) -> tuple[DatastoreVersion, Host, dict[str, Any]]:
    """The clone's datastore version, host (the source's) and agent payload, checked:
    the source serves, its host can clone, the volume is at least the source's."""
    source = records.load(s, source_id, project_id)
    inst = source.instance
    if inst.cluster_id is not None:
        raise NotImplementedByDatastore(
            f"Instance {source_id} is a member of cluster {inst.cluster_id}: a cluster "
            "member cannot be cloned (take a backup of it and restore that instead)"
        )
    if (
        inst.task_status == TaskStatus.BUILDING.value
        or ServiceStatus(inst.service_status) not in SERVING
    ):
        raise BadRequest(
            f"Instance {source_id} must be running to be cloned "
            f"(task {inst.task_status}, service {inst.service_status})"
        )
    volumes = json.loads(source.host.facts or "{}").get("volumes")
    if volumes != CLONE_VOLUMES:
        raise NotImplementedByDatastore(
            f"instant clones need XFS volumes, and host {source.host.name} keeps plain "
            f"directories ({volumes}); restore a backup of instance {source_id} instead"
        )
    if volume_gb < inst.volume_gb:
        raise BadRequest(
            f"a clone's volume ({volume_gb} GB) cannot be smaller than its source's "
            f"({inst.volume_gb} GB)"
        )
    return source.version, source.host, {"source_id": source_id}
