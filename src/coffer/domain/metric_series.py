"""Pure: the window a metrics history request asks for, and the thinning of a series to
at most a number of points (the metrics history, ``services.metric_history``).

Times are naive UTC datetimes, as the metadata stores them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from coffer.errors import BadRequest

__all__ = [
    "DEFAULT_MINUTES",
    "DEFAULT_POINTS",
    "MAX_POINTS",
    "MAX_SPAN",
    "Point",
    "Window",
    "check_points",
    "downsample",
    "resolve_window",
]

#: the window when none is given: the last hour
DEFAULT_MINUTES = 60
#: the longest window one request may ask for
MAX_SPAN = timedelta(days=31)
DEFAULT_POINTS = 240
MAX_POINTS = 2000


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()


@dataclass(frozen=True)
class Point:
    """One moment of an instance's metrics (a stored sample, or the mean of several)."""

    at: datetime
    up: bool
    connections: int | None = None
    #: operations per second (what they are: the series' ``rate_kind``)
    rate_per_s: float | None = None
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    volume_used_bytes: int | None = None
    volume_size_bytes: int | None = None
    replication_lag_s: float | None = None


def _naive_utc(value: datetime) -> datetime:
    """An aware time in UTC without its zone; a naive one is taken as UTC already."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def resolve_window(
    *,
    since: datetime | None,
    until: datetime | None,
    minutes: int | None,
    now: datetime,
) -> Window:
    """The window of a request: ``until`` (default ``now``) back to ``since``, or back
    ``minutes`` (default ``DEFAULT_MINUTES``). Raises ``BadRequest`` for both ``since``
    and ``minutes``, a window that does not move forward, or one longer than
    ``MAX_SPAN``."""
    if since is not None and minutes is not None:
        raise BadRequest("Give either 'since' or 'minutes', not both.")
    limit = int(MAX_SPAN.total_seconds() // 60)
    if minutes is not None and not 1 <= minutes <= limit:
        raise BadRequest(f"'minutes' must be between 1 and {limit}.")
    try:
        end = _naive_utc(until) if until is not None else now
        if since is not None:
            start = _naive_utc(since)
        else:
            start = end - timedelta(minutes=minutes if minutes is not None else DEFAULT_MINUTES)
    except OverflowError:
        raise BadRequest("The window reaches outside the years 1 to 9999.") from None
    if start >= end:
        raise BadRequest("'since' must be before 'until'.")
    if end - start > MAX_SPAN:
        raise BadRequest(f"The window may be at most {MAX_SPAN.days} days long.")
    return Window(start, end)


def check_points(points: int) -> int:
    """``points`` if it is a number of points a request may ask for, else ``BadRequest``."""
    if not 1 <= points <= MAX_POINTS:
        raise BadRequest(f"'points' must be between 1 and {MAX_POINTS}.")
    return points


def _mean(values: Sequence[float | int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _whole(values: Sequence[int | None]) -> int | None:
    mean = _mean(values)
    return round(mean) if mean is not None else None


def _merge(bucket: Sequence[Point]) -> Point:
    """One point for a bucket: at and up of its last sample, every figure the mean of
    the samples that have it (whole numbers rounded)."""
    last = bucket[-1]
    return Point(
        at=last.at,
        up=last.up,
        connections=_whole([p.connections for p in bucket]),
        rate_per_s=_mean([p.rate_per_s for p in bucket]),
        cpu_percent=_mean([p.cpu_percent for p in bucket]),
        memory_bytes=_whole([p.memory_bytes for p in bucket]),
        volume_used_bytes=_whole([p.volume_used_bytes for p in bucket]),
        volume_size_bytes=_whole([p.volume_size_bytes for p in bucket]),
        replication_lag_s=_mean([p.replication_lag_s for p in bucket]),
    )


def downsample(
    points: Sequence[Point], window: Window, max_points: int
) -> tuple[list[Point], float | None]:
    """At most ``max_points`` points of ``points`` (sorted by time, within ``window``):
    as they are when they fit, else the window cut into ``max_points`` equal buckets and
    each non-empty bucket merged into one point. Also the bucket width in seconds (None
    when nothing was merged)."""
    if len(points) <= max_points:
        return list(points), None
    step = window.seconds / max_points
    buckets: dict[int, list[Point]] = {}
    for p in points:
        offset = (p.at - window.since).total_seconds()
        index = min(max(math.floor(offset / step), 0), max_points - 1)
        buckets.setdefault(index, []).append(p)
    return [_merge(buckets[i]) for i in sorted(buckets)], step
