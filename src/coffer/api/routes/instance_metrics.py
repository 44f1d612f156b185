"""An instance's metrics history (Coffer extension): what its agent reported over a
window, for charts (``services.metric_history``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from fastapi import APIRouter

from coffer.api.deps import PrincipalDep, RuntimeDep, scope
from coffer.api.openapi import AUTHENTICATED, replies
from coffer.api.routes.common import PREFIX
from coffer.clock import utcnow
from coffer.contracts.engine import ActivityKind
from coffer.contracts.instance_metrics import (
    InstanceMetrics,
    InstanceMetricsResponse,
    MetricPoint,
)
from coffer.domain.metric_series import (
    DEFAULT_POINTS,
    Point,
    check_points,
    resolve_window,
)
from coffer.services import metric_history

router = APIRouter(prefix=PREFIX, tags=["instances"])


def _utc(value: datetime) -> datetime:
    """A stored naive UTC time as an aware one, to the second (as Trove shows times)."""
    return value.replace(microsecond=0, tzinfo=UTC)


def _point(p: Point) -> MetricPoint:
    return MetricPoint(
        at=_utc(p.at),
        up=p.up,
        connections=p.connections,
        rate_per_s=p.rate_per_s,
        cpu_percent=p.cpu_percent,
        memory_bytes=p.memory_bytes,
        volume_used_bytes=p.volume_used_bytes,
        volume_size_bytes=p.volume_size_bytes,
        replication_lag_s=p.replication_lag_s,
    )


@router.get(
    "/instances/{instance_id}/metrics", **replies(InstanceMetricsResponse, *AUTHENTICATED, 404)
)
def instance_metrics(
    project_id: str,
    instance_id: str,
    rt: RuntimeDep,
    who: PrincipalDep,
    since: datetime | None = None,
    until: datetime | None = None,
    minutes: int | None = None,
    points: int = DEFAULT_POINTS,
) -> InstanceMetricsResponse:
    """The instance's metrics from ``since`` (or ``minutes`` back, default 60) to
    ``until`` (default now), ISO 8601 times (UTC unless an offset is given), oldest first,
    at most ``points`` of them (longer series are averaged over equal steps). 400 for a
    bad window or count, 404 for an instance that is not the project's."""
    window = resolve_window(since=since, until=until, minutes=minutes, now=utcnow())
    series = metric_history.history(
        rt, scope(who, project_id), instance_id, window, check_points(points)
    )
    return InstanceMetricsResponse(
        metrics=InstanceMetrics(
            instance_id=series.instance_id,
            since=_utc(window.since),
            until=_utc(window.until),
            sample_interval_s=rt.settings.metrics_sample_interval_s,
            retention_s=rt.settings.metrics_retention_s,
            step_s=series.step_s,
            rate_kind=cast(ActivityKind | None, series.rate_kind),
            samples=[_point(p) for p in series.points],
        )
    )
