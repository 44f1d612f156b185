"""When the metrics history (``services.metric_history``) takes a sample, per server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

__all__ = ["SampleGate"]


class SampleGate:
    """Which instances are due a sample, and whether a prune is due, for one server (in
    memory; any thread). Servers sharing a metadata database keep a gate each, so an
    instance gets a sample at most once an interval from each server its agent talks to
    (an agent talks to one at a time)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sampled: dict[str, float] = {}
        self._pruned: float | None = None

    def due(self, instance_ids: Iterable[str], interval_s: float) -> list[str]:
        """Those of ``instance_ids`` whose last sample is ``interval_s`` old or more (or
        who have none); they count as sampled now."""
        now = self._clock()
        out = []
        with self._lock:
            for iid in instance_ids:
                last = self._sampled.get(iid)
                if last is None or now - last >= interval_s:
                    self._sampled[iid] = now
                    out.append(iid)
        return out

    def prune_due(self, every_s: float, interval_s: float) -> bool:
        """True at the first call and then at most once every ``every_s`` (it counts as
        done); also forgets instances not sampled for ``interval_s`` (they are due)."""
        now = self._clock()
        with self._lock:
            if self._pruned is not None and now - self._pruned < every_s:
                return False
            self._pruned = now
            for iid in [i for i, at in self._sampled.items() if now - at >= interval_s]:
                del self._sampled[iid]
            return True
