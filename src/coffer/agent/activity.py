"""The engines' activity for heartbeats (``/metrics``): each running instance's
counters (``engines.base.Stats``) read every heartbeat interval but at most every
``MIN_PERIOD_S`` (each reading opens a session), turned into rates between two readings.

Each round also reads every instance's cgroup (``ResourceLimits.usage``): its memory,
and its CPU time turned into a percentage of one CPU between two rounds.

``Rates`` and ``CpuPercent`` are the pure parts: readings in, figures out.
``ActivityWatch`` is the agent's runnable that takes the readings, on a small thread pool
of its own so that a slow engine never holds up a command or another reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from coffer.agent.cgroup_usage import GroupUsage
from coffer.agent.executor import Executor
from coffer.agent.store import InstanceStore
from coffer.contracts.agent_v1 import EngineActivity
from coffer.contracts.engine import ActivityKind, InstanceSpec
from coffer.domain.states import ServiceStatus
from coffer.engines.base import EngineCounters
from coffer.errors import CofferError

__all__ = ["MIN_PERIOD_S", "ActivityWatch", "CpuPercent", "Rates"]

log = logging.getLogger("coffer.agent.activity")

#: the shortest time between two readings of an instance, seconds
MIN_PERIOD_S = 5.0
#: instances in these states are asked for their counters; others are not up
_READ_STATES = frozenset({ServiceStatus.HEALTHY, ServiceStatus.BLOCKED})


@dataclass(frozen=True)
class _Reading:
    operations: int
    kind: ActivityKind
    at: float


class Rates:
    """Turns each instance's successive counter readings into ``EngineActivity``.

    Not thread-safe: one caller (the watch's loop) feeds it.
    """

    def __init__(self) -> None:
        self._last: dict[str, _Reading] = {}

    def observe(self, instance_id: str, counters: EngineCounters, at: float) -> EngineActivity:
        """The activity of a reading taken at monotonic time ``at``. The rate is the
        growth of ``operations`` since the previous reading of the same kind, per second;
        None for a first reading, or when the counter went back (the engine restarted)
        or no time passed."""
        now = _Reading(counters.operations, counters.kind, at)
        before = self._last.get(instance_id)
        self._last[instance_id] = now
        rate = None
        if (
            before is not None
            and before.kind == now.kind
            and now.at > before.at
            and now.operations >= before.operations
        ):
            rate = (now.operations - before.operations) / (now.at - before.at)
        return EngineActivity(
            up=True,
            connections=max(counters.connections, 0),
            kind=counters.kind,
            rate_per_s=rate,
        )

    def down(self, instance_id: str) -> EngineActivity:
        """The activity of an instance that is not running or did not answer; its next
        reading starts a new rate."""
        self._last.pop(instance_id, None)
        return EngineActivity(up=False)

    def forget(self, live: Iterable[str]) -> None:
        """Drop what is kept of instances not in ``live``."""
        keep = set(live)
        for iid in set(self._last) - keep:
            del self._last[iid]


class CpuPercent:
    """Turns each instance's successive cumulative CPU times into percent of one CPU.

    Not thread-safe: one caller (the watch's loop) feeds it.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, float]] = {}

    def observe(self, instance_id: str, cpu_usec: int | None, at: float) -> float | None:
        """CPU used since the previous reading at monotonic time ``at``, in percent of one
        CPU; None for a first reading, a missing one, when the counter went back (a new
        group) or no time passed."""
        if cpu_usec is None:
            self._last.pop(instance_id, None)
            return None
        before = self._last.get(instance_id)
        self._last[instance_id] = (cpu_usec, at)
        if before is None or at <= before[1] or cpu_usec < before[0]:
            return None
        return (cpu_usec - before[0]) / ((at - before[1]) * 1e6) * 100.0

    def forget(self, live: Iterable[str]) -> None:
        """Drop what is kept of instances not in ``live``."""
        keep = set(live)
        for iid in set(self._last) - keep:
            del self._last[iid]


class ActivityWatch:
    """Reads every instance's counters each ``interval()`` seconds (``MIN_PERIOD_S`` at
    least); ``current`` holds the latest ``EngineActivity`` per instance for the next
    heartbeats."""

    def __init__(
        self, executor: Executor, store: InstanceStore, interval: Callable[[], float]
    ) -> None:
        self._executor = executor
        self._store = store
        self._interval = interval
        self._rates = Rates()
        self._cpu = CpuPercent()
        self.current: dict[str, EngineActivity] = {}

    async def run(self) -> None:
        """Runs until cancelled."""
        pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="coffer-activity")
        try:
            while True:
                await self._round(pool)
                await asyncio.sleep(max(self._interval(), MIN_PERIOD_S))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    async def _round(self, pool: ThreadPoolExecutor) -> None:
        supervisors = dict(self._executor.supervisors)
        self._rates.forget(supervisors)
        self._cpu.forget(supervisors)
        for iid in set(self.current) - set(supervisors):
            del self.current[iid]
        for iid, sup in supervisors.items():
            activity = await self._engine_activity(pool, iid, sup.status, sup.spec)
            self.current[iid] = await self._with_usage(pool, iid, activity)

    async def _engine_activity(
        self, pool: ThreadPoolExecutor, iid: str, status: ServiceStatus, spec: InstanceSpec
    ) -> EngineActivity:
        """What the engine's counters say (not up unless it answered)."""
        stats = self._executor.engine(spec.engine).stats
        if status not in _READ_STATES:
            return self._rates.down(iid)
        if stats is None:
            return EngineActivity(up=status == ServiceStatus.HEALTHY)
        loop = asyncio.get_running_loop()
        paths = self._store.paths(iid)
        try:
            counters = await loop.run_in_executor(pool, stats.counters, paths, spec)
        except (OSError, CofferError) as exc:
            log.debug("activity counters of %s unreadable: %s", iid, exc)
            return self._rates.down(iid)
        except Exception:  # a metric must never take the agent down
            log.exception("reading the activity counters of %s failed", iid)
            return self._rates.down(iid)
        return self._rates.observe(iid, counters, time.monotonic())

    async def _with_usage(
        self, pool: ThreadPoolExecutor, iid: str, activity: EngineActivity
    ) -> EngineActivity:
        """``activity`` with the CPU and memory of the instance's cgroup, when it has one."""
        loop = asyncio.get_running_loop()
        usage: GroupUsage | None
        try:
            usage = await loop.run_in_executor(pool, self._executor.limits.usage, iid)
        except Exception:  # a metric must never take the agent down
            log.exception("reading the cgroup usage of %s failed", iid)
            usage = None
        cpu = self._cpu.observe(iid, usage.cpu_usec if usage else None, time.monotonic())
        memory = usage.memory_bytes if usage else None
        return activity.model_copy(update={"cpu_percent": cpu, "memory_bytes": memory})
