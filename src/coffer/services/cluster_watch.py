"""Whole-cluster recovery without an operator: the failover monitor's thread also looks
for Galera clusters that are entirely down (every member stopped or crashed: a host
restart, a power loss) and starts the cluster's restart, which recovers it from its most
advanced member (``workflows.clusters.restart_cluster``).

A cluster counts as down when none of its members has accepted connections for
``cluster_recover_after_s`` while every member's host reports (a silent host's statuses
say nothing) and no task runs. The restart first asks every member whether it is in a
Primary component, so a cluster that was merely slow to answer is restarted member by
member rather than recovered.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from coffer.clock import utcnow
from coffer.domain.states import IDLE_TASKS, ClusterTask, ServiceStatus
from coffer.errors import CofferError
from coffer.services import cluster_records, clusters, events
from coffer.services.cluster_records import ClusterKind, ClusterRecord
from coffer.services.runtime import Runtime

__all__ = ["recover_once"]

log = logging.getLogger("coffer.clusters")

_ACCEPTING = frozenset({ServiceStatus.HEALTHY, ServiceStatus.BLOCKED})
_IDLE = frozenset(t.value for t in IDLE_TASKS)


def recover_once(rt: Runtime, down_since: dict[str, datetime]) -> list[str]:
    """Start the recovery of every Galera cluster down long enough; the cluster ids.
    ``down_since`` (cluster id → when it was first seen down) is the caller's memory
    between rounds."""
    now = utcnow()
    expiry = timedelta(seconds=rt.settings.heartbeat_expiry_s)
    with rt.sessions() as s:
        recs = [r for r in cluster_records.load_many(s, None) if r.kind is ClusterKind.GALERA]
    down = {r.cluster.id for r in recs if _down(r, now, expiry)}
    for gone in set(down_since) - down:
        del down_since[gone]
    started = []
    after = timedelta(seconds=rt.settings.cluster_recover_after_s)
    for cluster_id in down:
        if now - down_since.setdefault(cluster_id, now) < after:
            continue
        del down_since[cluster_id]
        try:
            clusters.restart(rt, None, cluster_id)
        except CofferError as exc:  # something else claimed it: look again next round
            log.info("recovery of cluster %s postponed: %s", cluster_id, exc)
            continue
        log.warning("every member of cluster %s is down: recovering it", cluster_id)
        with rt.sessions.begin() as s:
            events.record(
                s,
                project_id=next(r.cluster.project_id for r in recs if r.cluster.id == cluster_id),
                action="cluster.recover",
                resource_type="cluster",
                resource_id=cluster_id,
                outcome="started",
                detail="every member stopped accepting connections",
            )
        started.append(cluster_id)
    return started


def _down(rec: ClusterRecord, now: datetime, expiry: timedelta) -> bool:
    if rec.cluster.task_status != ClusterTask.NONE.value or not rec.members:
        return False
    for member in rec.members:
        seen = member.host.last_heartbeat
        if member.instance.task_status not in _IDLE or seen is None or now - seen > expiry:
            return False
        if ServiceStatus(member.instance.service_status) in _ACCEPTING:
            return False
    return True
