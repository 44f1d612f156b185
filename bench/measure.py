"""Small measuring helpers shared by the benchmarks: percentiles and connection polling
(PostgreSQL with psycopg, MariaDB with PyMySQL, Redis with redis-py)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped,unused-ignore]
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "POLL_INTERVAL_S",
    "Summary",
    "percentile",
    "wait_connectable",
    "wait_mariadb_connectable",
    "wait_redis_ping",
    "wait_until_ok",
]

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


def wait_until_ok(
    attempt: Callable[[], object],
    *,
    retry_on: tuple[type[Exception], ...],
    timeout: float,
    interval: float = POLL_INTERVAL_S,
    abort: Callable[[], str | None] | None = None,
) -> float:
    """Call ``attempt()`` every ``interval`` seconds until it returns without raising one of
    ``retry_on``; return the monotonic time of that success. ``abort`` (if given) is asked
    about twice a second and ends the wait with ``RuntimeError`` when it returns a reason.
    Raises ``TimeoutError`` with the last error."""
    end = time.monotonic() + timeout
    next_check = time.monotonic() + _ABORT_CHECK_S
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            attempt()
            return time.monotonic()
        except retry_on as exc:
            last = exc
        if abort is not None and time.monotonic() >= next_check:
            if (reason := abort()) is not None:
                raise RuntimeError(f"gave up waiting for a connection: {reason}")
            next_check = time.monotonic() + _ABORT_CHECK_S
        time.sleep(interval)
    raise TimeoutError(f"no connection within {timeout}s; last error: {last}")


def wait_connectable(
    *,
    timeout: float,
    interval: float = POLL_INTERVAL_S,
    abort: Callable[[], str | None] | None = None,
    **conninfo: Any,
) -> float:
    """Until ``psycopg.connect(**conninfo)`` succeeds (see ``wait_until_ok``)."""

    def attempt() -> None:
        with psycopg.connect(connect_timeout=2, **conninfo):
            pass

    return wait_until_ok(
        attempt,
        retry_on=(psycopg.OperationalError,),
        timeout=timeout,
        interval=interval,
        abort=abort,
    )


def wait_mariadb_connectable(
    *,
    timeout: float,
    interval: float = POLL_INTERVAL_S,
    abort: Callable[[], str | None] | None = None,
    **conninfo: Any,
) -> float:
    """Until ``pymysql.connect(**conninfo)`` succeeds (see ``wait_until_ok``). Any MySQL
    error counts as "not yet": refused, access denied, unknown database."""

    def attempt() -> None:
        pymysql.connect(connect_timeout=2, **conninfo).close()

    return wait_until_ok(
        attempt,
        retry_on=(pymysql.err.MySQLError,),
        timeout=timeout,
        interval=interval,
        abort=abort,
    )


def wait_redis_ping(
    *,
    timeout: float,
    interval: float = POLL_INTERVAL_S,
    abort: Callable[[], str | None] | None = None,
    **conninfo: Any,
) -> float:
    """Until ``redis.Redis(**conninfo).ping()`` succeeds (see ``wait_until_ok``). Any Redis
    error counts as "not yet": refused, WRONGPASS (user not there yet), loading."""

    def attempt() -> None:
        # redis-py retries a refused connection itself (10 times, with back-off) unless
        # told not to; that would hide when the server really became reachable.
        client = redis.Redis(
            socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0), **conninfo
        )
        try:
            client.ping()
        finally:
            client.close()

    return wait_until_ok(
        attempt,
        retry_on=(redis.RedisError,),
        timeout=timeout,
        interval=interval,
        abort=abort,
    )
