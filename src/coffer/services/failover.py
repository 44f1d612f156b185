"""Automatic failover (Coffer extension): a thread of the server looks every
``failover_check_s`` at the sources whose replica sets have ``auto_failover`` and, when
one is lost (``domain.failover.lost_source``), claims the set and starts the same eject
workflow an operator's ``eject_replica_source`` starts: the most advanced replica is
promoted, the others follow it, and the old source is made a replica of it — queued for
its host, whose agent holds a former source back until the control plane confirms its
role (``agents.held_sources``), so it never takes writes again.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from coffer.clock import utcnow
from coffer.db.models import Host, Instance
from coffer.domain.failover import Member, lost_source
from coffer.domain.states import ServiceStatus, TaskStatus
from coffer.errors import CofferError
from coffer.services import events
from coffer.services.cluster_watch import recover_once
from coffer.services.replicas import claim_for_eject
from coffer.services.runtime import Runtime

__all__ = ["FailoverMonitor", "check_once"]

log = logging.getLogger("coffer.failover")


def check_once(rt: Runtime) -> list[str]:
    """Start a failover for every lost source now; the workflow ids started."""
    from coffer.workflows import replicas as replica_wf

    after = timedelta(seconds=rt.settings.failover_after_s)
    now = utcnow()
    started = []
    with rt.sessions() as s:
        rows = s.execute(
            select(Instance, Host.last_heartbeat)
            .join(Host, Host.id == Instance.host_id)
            .where(
                Instance.auto_failover.is_(True),
                Instance.deleted.is_(False),
                Instance.replica_of_id.is_(None),
                Instance.task_status == TaskStatus.NONE.value,
            )
        ).all()
        candidates = []
        for source, seen in rows:
            replicas = s.execute(
                select(Instance, Host.last_heartbeat)
                .join(Host, Host.id == Instance.host_id)
                .where(Instance.replica_of_id == source.id, Instance.deleted.is_(False))
            ).all()
            reason = lost_source(
                _member(source, seen), [_member(r, rseen) for r, rseen in replicas], now, after
            )
            if reason is not None:
                candidates.append((source.id, [r.id for r, _ in replicas], reason))
    for source_id, replica_ids, reason in candidates:
        workflow_id = f"failover-{source_id}-{uuid.uuid4().hex[:8]}"
        try:
            with rt.sessions.begin() as s:
                claim_for_eject(rt, s, source_id, replica_ids, workflow_id)
                lost = s.get(Instance, source_id)
                assert lost is not None
                events.record(
                    s,
                    project_id=lost.project_id,
                    action="instance.failover",
                    resource_type="instance",
                    resource_id=source_id,
                    outcome="started",
                    detail=reason,
                )
        except CofferError as exc:  # a member is busy: look again next round
            log.info("failover of %s postponed: %s", source_id, exc)
            continue
        log.warning("instance %s is lost (%s): failing over", source_id, reason)
        replica_wf.start_eject(workflow_id, source_id, reason=f"automatic failover: {reason}")
        started.append(workflow_id)
    return started


def _member(instance: Instance, seen: datetime | None) -> Member:
    state = json.loads(instance.replication_json or "{}")
    streaming = state.get("streaming")
    return Member(
        instance_id=instance.id,
        host_seen=seen,
        service_status=ServiceStatus(instance.service_status),
        streaming=bool(streaming) if streaming is not None else None,
    )


class FailoverMonitor:
    """Runs ``check_once`` and ``cluster_watch.recover_once`` every
    ``failover_check_s`` on a daemon thread."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._clusters_down: dict[str, datetime] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="failover", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._rt.settings.failover_check_s):
            try:
                check_once(self._rt)
                recover_once(self._rt, self._clusters_down)
            except Exception:  # the monitor must outlive a bad round
                log.exception("failover check failed")
