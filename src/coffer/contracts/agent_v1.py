"""The agent protocol (``/agent/v1``): always agent-initiated HTTP/JSON.

register   join token → host id + host credential (kept by the agent)
poll       long poll; returns commands for this host. The agent lists the command ids it is
           still running, so the server re-sends only commands that were lost.
result     one per command, posted until acknowledged (at-least-once)
heartbeat  observed engine state; ``seq`` grows monotonically, stale ones are dropped
log-archives  where and with which key to ship the change logs of the listed instances
           (those with a completed full backup; secrets: the answer is never logged)
roles      which of the listed instances, sources when the agent last heard, are no
           longer (failed over while it was away): the agent keeps them from taking writes
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from coffer.contracts.engine import ActivityKind


class CommandKind(StrEnum):
    #: prepare, configure, start, wait until accepting, create initial dbs/users
    ENSURE = "instance.ensure"
    #: stop the engine and remove every file of the instance
    DELETE = "instance.delete"
    RESTART = "instance.restart"
    #: store a new spec, render configuration and restart
    RECONFIGURE = "instance.reconfigure"
    RESIZE_VOLUME = "instance.resize_volume"
    #: store a new spec, render configuration and apply what needs no restart, live
    APPLY_PARAMETERS = "instance.apply_parameters"
    #: a users/databases/root operation (``payload.op`` names it)
    ADMIN = "instance.admin"
    #: stream a backup to the object store (``payload.backup``, ``payload.store``)
    BACKUP = "instance.backup"
    #: restore a backup into a throwaway instance (``spec``), check it, remove it
    VERIFY_BACKUP = "backup.verify"
    #: on a source: keep what replica ``payload.replica_id`` needs (account, slot)
    REPLICATION_OPEN = "replication.open_source"
    #: on a source: drop what was kept for replica ``payload.replica_id``
    REPLICATION_CLOSE = "replication.close_source"
    #: make the instance a replica of ``payload.follow`` (re-point it), restarting if needed
    FOLLOW = "replication.follow"
    #: stop following and accept writes (on a fenced primary: accept writes again)
    PROMOTE = "replication.promote"
    #: refuse every write; the result's ``position`` is the final one
    FENCE = "replication.fence"
    #: wait until the replica's position reaches ``payload.position`` (``payload.timeout_s``)
    CATCH_UP = "replication.catch_up"
    #: one step on a cluster member (``payload.op``, ``payload.args``; ``agent.clusters``)
    CLUSTER = "cluster.step"
    #: show, publish or discard instance logs (``payload.op``, ``payload.prefixes``: log
    #: name → object prefix, ``payload.store``; ``agent.guest_logs``)
    GUEST_LOG = "instance.guest_log"


class RegisterRequest(BaseModel):
    join_token: str
    host_name: str
    address: str
    engines: dict[str, list[str]] = Field(default_factory=dict)
    #: what the host permits, e.g. {"volumes": "xfs-loop", "limits": "cgroup v1 ..."}
    facts: dict[str, str] = Field(default_factory=dict)


class RegisterResponse(BaseModel):
    host_id: str
    credential: str
    heartbeat_interval_s: float


class AgentCommand(BaseModel):
    id: str
    kind: CommandKind
    instance_id: str | None
    payload: dict[str, Any]


class PollRequest(BaseModel):
    wait_s: float = Field(default=20.0, ge=0, le=60)
    running: list[str] = Field(default_factory=list)


class PollResponse(BaseModel):
    commands: list[AgentCommand]


class CommandResult(BaseModel):
    ok: bool
    result: dict[str, Any] = Field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None
    seconds: float | None = None


class EngineActivity(BaseModel):
    """What the agent read of a running engine's activity, and what the instance's cgroup
    says it uses, for ``/metrics`` and the metrics history."""

    #: the engine answered the reading (an instance that is not running is not up)
    up: bool
    #: client sessions open (the reading's own session not counted)
    connections: int | None = Field(default=None, ge=0)
    #: what ``rate_per_s`` counts (``engines.base.EngineCounters.kind``)
    kind: ActivityKind | None = None
    #: operations per second between the agent's last two readings; None after the
    #: first one, or when the engine restarted in between (its counters went back)
    rate_per_s: float | None = Field(default=None, ge=0)
    #: CPU used between the agent's last two readings of the instance's cgroup, in percent
    #: of one CPU (200 = two CPUs busy); None without a cgroup or after the first reading
    cpu_percent: float | None = Field(default=None, ge=0)
    #: memory the instance's cgroup uses now (working set: page cache it may drop at once
    #: not counted), bytes; None without a cgroup
    memory_bytes: int | None = Field(default=None, ge=0)


class InstanceObservation(BaseModel):
    instance_id: str
    service_status: str
    #: agent clock (ns) when observed; the server keeps only the newest per instance
    seq: int = 0
    volume_used_bytes: int | None = None
    detail: str = ""
    #: bytes a running backup of the instance has streamed so far
    backup_bytes: int | None = None
    #: UNIX time up to which the instance's change log is shipped (point-in-time recovery)
    restorable_until: float | None = None
    #: the engine's replication role and progress (``ReplicaState`` as a dict)
    replication: dict[str, Any] | None = None
    #: the engine's activity (optional: older agents do not send it)
    activity: EngineActivity | None = None
    #: how often the agent restarted the engine after it died (since the agent started)
    restarts: int = Field(default=0, ge=0)


class Heartbeat(BaseModel):
    seq: int
    instances: list[InstanceObservation] = Field(default_factory=list)
    engines: dict[str, list[str]] = Field(default_factory=dict)
    facts: dict[str, str] = Field(default_factory=dict)


class HeartbeatResponse(BaseModel):
    accepted: bool
    heartbeat_interval_s: float


class LogArchivesRequest(BaseModel):
    instance_ids: list[str] = Field(default_factory=list, max_length=10000)


class LogArchivesResponse(BaseModel):
    #: instance id → {"store": StoreConfig, "prefix": str, "key": base64, "since": positions}
    archives: dict[str, dict[str, Any]] = Field(default_factory=dict)


class RolesRequest(BaseModel):
    instance_ids: list[str] = Field(default_factory=list, max_length=10000)


class RolesResponse(BaseModel):
    #: instances that now follow another source (or are gone): never to take writes again
    demoted: list[str] = Field(default_factory=list)
