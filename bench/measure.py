"""Small measuring helpers shared by the benchmarks: percentiles and connection polling."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

__all__ = ["POLL_INTERVAL_S", "Summary", "percentile", "wait_connectable"]

#: How often a not-yet-ready server is tried again.
POLL_INTERVAL_S = 0.02
_ABORT_CHECK_S = 0.5


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between order statistics."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(len(values), percentile(values, 50), percentile(values, 95), max(values))

    def line(self, unit: str = "s") -> str:
        return (
            f"p50 {self.p50:7.3f} {unit}   p95 {self.p95:7.3f} {unit}   "
            f"max {self.max:7.3f} {unit}   (n={self.count})"
        )


def wait_connectable(
    *,
    timeout: float,
    interval: float = POLL_INTERVAL_S,
    abort: Callable[[], str | None] | None = None,
    **conninfo: Any,
) -> float:
    """Try ``psycopg.connect(**conninfo)`` every ``interval`` seconds until it succeeds;
    return the monotonic time of success. ``abort`` (if given) is asked about twice a
    second and ends the wait with ``RuntimeError`` when it returns a reason. Raises
    ``TimeoutError`` with the last connection error."""
    end = time.monotonic() + timeout
    next_check = time.monotonic() + _ABORT_CHECK_S
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            with psycopg.connect(connect_timeout=2, **conninfo):
                return time.monotonic()
        except psycopg.OperationalError as exc:
            last = exc
        if abort is not None and time.monotonic() >= next_check:
            if (reason := abort()) is not None:
                raise RuntimeError(f"gave up waiting for a connection: {reason}")
            next_check = time.monotonic() + _ABORT_CHECK_S
        time.sleep(interval)
    raise TimeoutError(f"no connection within {timeout}s; last error: {last}")
