"""Instance state axes and the one pure function that derives the public status.

``task_status`` is what the control plane is doing (set only by claims and workflows);
``service_status`` is what the agent last observed of the engine. The public ``status``
and ``operating_status`` are derived from both, plus heartbeat freshness, by
``public_status``; nothing else computes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class TaskStatus(StrEnum):
    NONE = "NONE"
    BUILDING = "BUILDING"
    REBOOTING = "REBOOTING"
    RESIZING = "RESIZING"
    DELETING = "DELETING"
    RESTART_REQUIRED = "RESTART_REQUIRED"
    #: configuration values are being applied (shown as ACTIVE with no operating status)
    UPDATING = "UPDATING"
    #: a backup of the instance is running
    BACKUP = "BACKUP"
    #: a replica becomes the source of its replica set (planned switchover)
    PROMOTING = "PROMOTING"
    #: the lost source of a replica set is replaced by its most advanced replica
    EJECTING = "EJECTING"
    #: a replica leaves its replica set and becomes a standalone instance
    DETACHING = "DETACHING"
    BUILDING_ERROR = "BUILDING_ERROR"
    DELETING_ERROR = "DELETING_ERROR"


class ClusterTask(StrEnum):
    """Trove's cluster tasks (``cluster.task.name``); clusters have no status of their own."""

    NONE = "NONE"
    BUILDING = "BUILDING"
    DELETING = "DELETING"
    GROWING_CLUSTER = "GROWING_CLUSTER"
    SHRINKING_CLUSTER = "SHRINKING_CLUSTER"
    RESTARTING_CLUSTER = "RESTARTING_CLUSTER"

    @property
    def description(self) -> str:
        return _CLUSTER_TASK_TEXT[self]


_CLUSTER_TASK_TEXT = {
    ClusterTask.NONE: "No tasks for the cluster.",
    ClusterTask.BUILDING: "Building the initial cluster.",
    ClusterTask.DELETING: "Deleting the cluster.",
    ClusterTask.GROWING_CLUSTER: "Increasing the size of the cluster.",
    ClusterTask.SHRINKING_CLUSTER: "Decreasing the size of the cluster.",
    ClusterTask.RESTARTING_CLUSTER: "Restarting the cluster.",
}
#: Trove's ids of the cluster tasks (``cluster.task.id``)
CLUSTER_TASK_IDS = {
    ClusterTask.NONE: 1,
    ClusterTask.BUILDING: 2,
    ClusterTask.DELETING: 3,
    ClusterTask.GROWING_CLUSTER: 5,
    ClusterTask.SHRINKING_CLUSTER: 6,
    ClusterTask.RESTARTING_CLUSTER: 8,
}


class ServiceStatus(StrEnum):
    NEW = "new"
    BUILDING = "building"
    RUNNING = "running"
    HEALTHY = "healthy"
    RESTARTING = "restarting"
    SHUTDOWN = "shutdown"
    #: accepting reads only (e.g. the volume is nearly full)
    BLOCKED = "blocked"
    CRASHED = "crashed"
    FAILED = "failed to spawn"
    UNKNOWN = "unknown"
    DELETED = "deleted"


#: Tasks from which a new operation may claim the instance.
IDLE_TASKS = frozenset({TaskStatus.NONE, TaskStatus.RESTART_REQUIRED})
#: Tasks that end in ERROR; the instance may only be deleted or reset.
ERROR_TASKS = frozenset({TaskStatus.BUILDING_ERROR, TaskStatus.DELETING_ERROR})
#: Service states from which an action may be performed (Trove's list).
ACTIONABLE_SERVICE = frozenset(
    {
        ServiceStatus.RUNNING,
        ServiceStatus.HEALTHY,
        ServiceStatus.BLOCKED,
        ServiceStatus.SHUTDOWN,
        ServiceStatus.CRASHED,
    }
)

#: Service states of an engine that answers queries (it may refuse writes: BLOCKED).
SERVING = frozenset({ServiceStatus.HEALTHY, ServiceStatus.RUNNING, ServiceStatus.BLOCKED})

_TASK_STATUS = {
    TaskStatus.BUILDING: "BUILD",
    TaskStatus.REBOOTING: "REBOOT",
    TaskStatus.RESIZING: "RESIZE",
    TaskStatus.DELETING: "SHUTDOWN",
    TaskStatus.RESTART_REQUIRED: "RESTART_REQUIRED",
    TaskStatus.UPDATING: "ACTIVE",
    TaskStatus.PROMOTING: "PROMOTE",
    TaskStatus.EJECTING: "EJECT",
    TaskStatus.DETACHING: "DETACH",
}

_SERVICE_OPERATING = {
    ServiceStatus.NEW: "NEW",
    ServiceStatus.BUILDING: "BUILD",
    ServiceStatus.RUNNING: "ACTIVE",
    ServiceStatus.HEALTHY: "HEALTHY",
    ServiceStatus.BLOCKED: "BLOCKED",
    ServiceStatus.RESTARTING: "RESTARTING",
    ServiceStatus.SHUTDOWN: "SHUTDOWN",
    ServiceStatus.CRASHED: "SHUTDOWN",
    ServiceStatus.FAILED: "FAILED",
    ServiceStatus.UNKNOWN: "ERROR",
    ServiceStatus.DELETED: "DELETED",
}


@dataclass(frozen=True)
class StatusInputs:
    task_status: TaskStatus
    service_status: ServiceStatus
    last_heartbeat: datetime | None
    now: datetime
    heartbeat_expiry: timedelta


@dataclass(frozen=True)
class PublicStatus:
    status: str
    operating_status: str


def heartbeat_is_stale(inputs: StatusInputs) -> bool:
    if inputs.last_heartbeat is None:
        return True
    return inputs.now - inputs.last_heartbeat > inputs.heartbeat_expiry


def public_status(inputs: StatusInputs) -> PublicStatus:
    """Trove's ``status`` / ``operating_status`` for an instance (first matching rule wins)."""
    task = inputs.task_status
    if task in ERROR_TASKS:
        return PublicStatus("ERROR", "ERROR" if task is TaskStatus.DELETING_ERROR else "")
    if task in _TASK_STATUS:
        operating = ""
        if task is TaskStatus.RESTART_REQUIRED:
            operating = "RESTART_REQUIRED"
        return PublicStatus(_TASK_STATUS[task], operating)
    # during a backup the engine keeps serving: its own state shows as operating status
    shown = "BACKUP" if task is TaskStatus.BACKUP else "ACTIVE"
    if heartbeat_is_stale(inputs):
        return PublicStatus(shown, "ERROR")
    return PublicStatus(shown, _SERVICE_OPERATING[inputs.service_status])


class BackupState(StrEnum):
    """Trove's backup states (``RESTORED`` is not used: Coffer registers no foreign ones)."""

    NEW = "NEW"
    BUILDING = "BUILDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    DELETE_FAILED = "DELETE_FAILED"


class VerifyStatus(StrEnum):
    """Where the proof that a backup restores stands."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    VERIFIED = "VERIFIED"
    FAILED = "FAILED"


#: backups that are still being taken
RUNNING_BACKUPS = frozenset({BackupState.NEW, BackupState.BUILDING})


def can_perform_action(task: TaskStatus, service: ServiceStatus) -> bool:
    """Trove's ``validate_can_perform_action``: idle task and an actionable engine state."""
    return task in IDLE_TASKS and service in ACTIONABLE_SERVICE
