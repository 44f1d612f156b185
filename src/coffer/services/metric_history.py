"""Each instance's metrics history (Coffer extension): samples of what its agent reports,
kept at a bounded rate, pruned after a retention, read back as a series for charts.

* ``record`` — after each accepted heartbeat: one sample per reported instance that is
  due one (``metrics_sample_interval_s`` since its last, per server:
  ``services.sample_gate``), and now and then (``PRUNE_EVERY_S``) the deletion of
  samples older than ``metrics_retention_s``. Pruning rides on heartbeats: no service
  of its own.
* ``forget`` — an instance's samples go in the transaction that marks it deleted,
  after the mark: ``record`` locks the rows of the instances it samples (PostgreSQL; a
  SQLite writer is alone anyway), so a sample is either committed before the deletion
  (and deleted with the rest) or finds the instance deleted (and is not written).
* ``history`` — the samples of one window of a live instance, thinned to a number of
  points (``domain.metric_series``).

A sample holds ids, counts, rates, percentages and bytes: never a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from coffer.clock import utcnow
from coffer.contracts.agent_v1 import Heartbeat, InstanceObservation
from coffer.db.models import Instance, MetricSample
from coffer.domain.metric_series import Point, Window, downsample
from coffer.errors import NotFound
from coffer.services.metrics.snapshot import replica_lag
from coffer.services.runtime import Runtime

__all__ = [
    "PRUNE_EVERY_S",
    "Series",
    "forget",
    "history",
    "prune",
    "record",
    "sample_of",
]

#: how often a server deletes the samples past their retention, at most (seconds)
PRUNE_EVERY_S = 60.0
_GIB = 1024**3


def sample_of(
    obs: InstanceObservation,
    *,
    volume_gb: int,
    replication_json: str | None,
    at: datetime,
) -> MetricSample:
    """The sample of one observation. Connections and rate only when the engine answered
    (as ``/metrics`` shows them); CPU and memory come from the instance's cgroup."""
    seen = obs.activity
    up = seen is not None and seen.up
    return MetricSample(
        instance_id=obs.instance_id,
        at=at,
        up=up,
        connections=seen.connections if seen is not None and up else None,
        rate_kind=seen.kind if seen is not None and up else None,
        rate_per_s=seen.rate_per_s if seen is not None and up else None,
        cpu_percent=seen.cpu_percent if seen is not None else None,
        memory_bytes=seen.memory_bytes if seen is not None else None,
        volume_used_bytes=obs.volume_used_bytes,
        volume_size_bytes=volume_gb * _GIB,
        replication_lag_s=replica_lag(replication_json),
    )


def record(rt: Runtime, host_id: str, hb: Heartbeat) -> int:
    """Store a sample of each instance of ``host_id`` that the accepted heartbeat ``hb``
    reports and that is due one, and prune when due; the number of samples stored.

    Call after the heartbeat's own transaction (it reads the replication state that one
    stored). One short write, and none at all for most heartbeats.
    """
    settings = rt.settings
    observed = {o.instance_id: o for o in hb.instances}
    due = rt.samples.due(observed, settings.metrics_sample_interval_s)
    pruning = rt.samples.prune_due(PRUNE_EVERY_S, settings.metrics_sample_interval_s)
    if not due and not pruning:
        return 0
    now = utcnow()
    stored = 0
    with rt.sessions.begin() as s:
        if due:
            rows = s.execute(
                select(Instance.id, Instance.volume_gb, Instance.replication_json)
                .where(
                    Instance.host_id == host_id,
                    Instance.deleted.is_(False),
                    Instance.id.in_(due),
                )
                .order_by(Instance.id)
                .with_for_update()
            ).all()
            for row in rows:
                s.add(
                    sample_of(
                        observed[row.id],
                        volume_gb=row.volume_gb,
                        replication_json=row.replication_json,
                        at=now,
                    )
                )
            stored = len(rows)
        if pruning:
            prune(s, now - timedelta(seconds=settings.metrics_retention_s))
    return stored


def prune(s: Session, before: datetime) -> None:
    """Delete every sample taken before ``before`` (naive UTC)."""
    s.execute(delete(MetricSample).where(MetricSample.at < before))


def forget(s: Session, instance_id: str) -> None:
    """Delete every sample of the instance, in ``s``'s transaction; call after its
    ``deleted`` mark is flushed (see the module's docstring)."""
    s.execute(delete(MetricSample).where(MetricSample.instance_id == instance_id))


@dataclass(frozen=True)
class Series:
    instance_id: str
    window: Window
    #: what ``Point.rate_per_s`` counts (the latest sample's kind), None when unknown
    rate_kind: str | None
    points: list[Point]
    #: seconds of samples merged into one point; None when the samples are shown as kept
    step_s: float | None


def history(
    rt: Runtime, project_id: str | None, instance_id: str, window: Window, max_points: int
) -> Series:
    """The samples of the live instance within ``window``, oldest first, at most
    ``max_points`` of them. ``project_id`` None: any project (admins). ``NotFound`` for an
    instance that does not exist, is deleted, or is another project's."""
    with rt.sessions() as s:
        q = select(Instance.id).where(Instance.id == instance_id, Instance.deleted.is_(False))
        if project_id is not None:
            q = q.where(Instance.project_id == project_id)
        if s.scalar(q) is None:
            raise NotFound(f"Instance {instance_id} could not be found.")
        rows = s.scalars(
            select(MetricSample)
            .where(
                MetricSample.instance_id == instance_id,
                MetricSample.at >= window.since,
                MetricSample.at <= window.until,
            )
            .order_by(MetricSample.at, MetricSample.id)
        ).all()
        kinds = [r.rate_kind for r in rows if r.rate_kind]
        points = [_point(r) for r in rows]
    thinned, step = downsample(points, window, max_points)
    return Series(instance_id, window, kinds[-1] if kinds else None, thinned, step)


def _point(row: MetricSample) -> Point:
    return Point(
        at=row.at,
        up=row.up,
        connections=row.connections,
        rate_per_s=row.rate_per_s,
        cpu_percent=row.cpu_percent,
        memory_bytes=row.memory_bytes,
        volume_used_bytes=row.volume_used_bytes,
        volume_size_bytes=row.volume_size_bytes,
        replication_lag_s=row.replication_lag_s,
    )
