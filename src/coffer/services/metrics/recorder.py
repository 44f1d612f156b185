"""The figures a Coffer server counts as things happen, kept in memory.

One ``Metrics`` per server (``Runtime.metrics``), each with its own
``CollectorRegistry``: nothing is registered globally, so many servers may live in one
process (tests) and nothing exists before a server is built. Counters start from zero
when the server starts, as Prometheus expects of counters.

All methods may be called from any thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from coffer.contracts.agent_v1 import EngineActivity, Heartbeat

__all__ = ["ActivitySample", "Metrics"]

#: request latencies, seconds (agent long polls land in the last buckets)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: workflow durations, seconds (a restart takes seconds, a large backup hours)
_WORKFLOW_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0)


@dataclass(frozen=True)
class ActivitySample:
    """The latest engine activity an agent reported for an instance."""

    activity: EngineActivity
    #: the observation's ``seq`` (agent clock, ns): an older one never replaces it
    seq: int
    #: when it was received (``time.time()`` of the server)
    received: float


class Metrics:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "coffer_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "coffer_http_request_duration_seconds",
            "Time to answer HTTP requests, by route template.",
            ["route"],
            buckets=_HTTP_BUCKETS,
            registry=self.registry,
        )
        self.workflows_started = Counter(
            "coffer_workflows_started",
            "Workflow runs started in this server (recovered ones included), by name.",
            ["workflow"],
            registry=self.registry,
        )
        self.workflows_finished = Counter(
            "coffer_workflows_finished",
            "Workflow runs ended in this server, by name and outcome "
            "(completed, failed: raised, cancelled).",
            ["workflow", "outcome"],
            registry=self.registry,
        )
        self.workflow_seconds = Histogram(
            "coffer_workflow_duration_seconds",
            "Duration of workflow runs in this server, by name.",
            ["workflow"],
            buckets=_WORKFLOW_BUCKETS,
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._heartbeats: dict[str, int] = {}
        self._activity: dict[str, ActivitySample] = {}

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request; ``route`` is a template, never a raw path."""
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(route).observe(seconds)

    def workflow_started(self, name: str) -> None:
        self.workflows_started.labels(name).inc()

    def workflow_finished(self, name: str, outcome: str, seconds: float) -> None:
        self.workflows_finished.labels(name, outcome).inc()
        self.workflow_seconds.labels(name).observe(seconds)

    def heartbeat(self, host_id: str, hb: Heartbeat, *, accepted: bool) -> None:
        """Count a heartbeat received from ``host_id``; if it was ``accepted`` (not
        stale), keep each instance's reported activity unless a newer one is kept."""
        now = self._clock()
        with self._lock:
            self._heartbeats[host_id] = self._heartbeats.get(host_id, 0) + 1
            if not accepted:
                return
            for obs in hb.instances:
                if obs.activity is None:
                    continue
                kept = self._activity.get(obs.instance_id)
                if kept is None or obs.seq >= kept.seq:
                    self._activity[obs.instance_id] = ActivitySample(obs.activity, obs.seq, now)

    def heartbeat_counts(self) -> dict[str, int]:
        """Heartbeats received per host id since the server started."""
        with self._lock:
            return dict(self._heartbeats)

    def activity(self, live: Iterable[str]) -> dict[str, ActivitySample]:
        """The kept activity of the ``live`` instances; that of any other is dropped
        (deleted instances leave nothing behind)."""
        keep = set(live)
        with self._lock:
            for iid in set(self._activity) - keep:
                del self._activity[iid]
            return dict(self._activity)
