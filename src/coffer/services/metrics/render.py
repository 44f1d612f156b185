"""One scrape: the recorded control-plane figures and a fresh snapshot, as text."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import Metric

from coffer.services.metrics.families import host_families, instance_families
from coffer.services.metrics.recorder import Metrics
from coffer.services.metrics.snapshot import Snapshot, read_snapshot

if TYPE_CHECKING:
    from coffer.services.runtime import Runtime

__all__ = ["CONTENT_TYPE", "render", "scrape"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: activity is stale after this many heartbeat intervals (and never before this many s)
_STALE_INTERVALS = 5
_STALE_MIN_S = 15.0


class _Families:
    """A one-shot collector of already built families (``generate_latest`` reads it)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def render(metrics: Metrics, snapshot: Snapshot, *, now: float, stale_after_s: float) -> bytes:
    """The exposition text of ``metrics`` and of ``snapshot`` at wall time ``now``."""
    activity = metrics.activity(row.id for row in snapshot.instances)
    families = [
        *instance_families(snapshot, activity, now=now, stale_after_s=stale_after_s),
        *host_families(snapshot, metrics.heartbeat_counts(), now=now),
    ]
    return generate_latest(metrics.registry) + generate_latest(_Families(families))


def scrape(rt: Runtime) -> bytes:
    """Read the metadata (blocks briefly: call from a thread) and render everything."""
    with rt.sessions() as s:
        snapshot = read_snapshot(s)
    stale = max(_STALE_MIN_S, _STALE_INTERVALS * rt.settings.heartbeat_interval_s)
    return render(rt.metrics, snapshot, now=time.time(), stale_after_s=stale)
