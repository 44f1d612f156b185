"""What every use case needs, built once at start-up and passed explicitly."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from coffer.security import Sealer
from coffer.services.metrics.recorder import Metrics
from coffer.services.sample_gate import SampleGate
from coffer.settings import ServerSettings


class Wakeup:
    """Wakes long-polling agents when a command for their host is queued.

    ``notify`` may be called from any thread (workflow steps run in threads); waiters are
    coroutines on the server's event loop. Other servers sharing the database are not
    notified; pollers re-check the database at least every ``recheck_s`` seconds.
    """

    recheck_s = 0.5

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}
        self._lock = threading.Lock()
        self._closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def event(self, host_id: str) -> asyncio.Event:
        with self._lock:
            return self._events.setdefault(host_id, asyncio.Event())

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Server shutting down: every long poll returns at once (any thread)."""
        self._closed = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            for event in list(self._events.values()):
                loop.call_soon_threadsafe(event.set)

    def notify(self, host_id: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.event(host_id).set)


@dataclass
class Runtime:
    settings: ServerSettings
    sessions: sessionmaker[Session]
    sealer: Sealer
    wakeup: Wakeup = field(default_factory=Wakeup)
    #: this server's figures for ``/metrics``
    metrics: Metrics = field(default_factory=Metrics)
    #: when this server next keeps a metrics history sample (``services.metric_history``)
    samples: SampleGate = field(default_factory=SampleGate)
