"""Continuous archiving: the agent ships each instance's change log to the object store.

About once a second (``ROUND_S``) every running instance whose engine has a
``LogArchive``, and for which the control plane gave an archive target (it does once the
instance has a completed full backup), gets one shipping round on a small thread pool;
rounds of one instance never overlap. A round:

1. notes the time ``t`` (less ``_MARGIN_S``) and the engine's committed ``position``;
2. lists the engine's log files and stores what is new of each: a complete file whole
   (then its parts are deleted), the ready prefix of an open one as a further part
   (``storage.logstore``);
3. the latest ``t`` whose position is now covered — that file stored up to the offset,
   and every listed file before it stored whole — becomes the instance's
   ``restorable_until``, reported in heartbeats. It never goes back.

What is stored is learnt from the store once per target (after an agent restart the
shipper resumes where the store ends). A failing round (store or engine unreachable) is
logged once per distinct error and retried next round; ``restorable_until`` then stops
advancing, which the instance shows.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths, LogArchive, LogFile, LogPosition
from coffer.storage import StoreConfig, open_store
from coffer.storage.logstore import LogStore, Shipped

__all__ = ["ROUND_S", "ArchiveTarget", "InstanceShipper"]

log = logging.getLogger("coffer.agent.logship")

ROUND_S = 1.0
#: a commit's timestamp is taken just before its record is written: a sample's time is
#: set back by this much so that every commit stamped before it lies before its position
_MARGIN_S = 0.1
#: samples kept while the log is not shipped up to them (about one per round)
_MAX_SAMPLES = 3600


@dataclass(frozen=True)
class ArchiveTarget:
    """Where and how one instance's log is shipped (from the control plane)."""

    store: StoreConfig
    prefix: str
    key: bytes
    #: positions of the instance's oldest full backup: older log files are not needed
    since: dict[str, str]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ArchiveTarget:
        return cls(
            store=StoreConfig.model_validate(data["store"]),
            prefix=str(data["prefix"]),
            key=base64.b64decode(data["key"]),
            since={str(k): str(v) for k, v in data["since"].items()},
        )


class InstanceShipper:
    """The shipping state of one instance; ``round`` runs in one thread at a time."""

    def __init__(self, instance_id: str, target: ArchiveTarget) -> None:
        self.instance_id = instance_id
        self.target = target
        self.logs = LogStore(open_store(target.store), target.prefix, target.key, instance_id)
        self.restorable_until: float | None = None
        self._shipped: dict[str, Shipped] | None = None
        self._samples: deque[tuple[float, LogPosition]] = deque(maxlen=_MAX_SAMPLES)
        self._last_error = ""

    def round(self, archive: LogArchive, paths: InstancePaths, spec: InstanceSpec) -> None:
        try:
            self._round(archive, paths, spec)
        except Exception as exc:  # reported, retried next round
            text = f"{type(exc).__name__}: {exc}"
            if text != self._last_error:
                log.warning("shipping the log of %s failed: %s", self.instance_id, text)
            self._last_error = text
        else:
            self._last_error = ""

    def _round(self, archive: LogArchive, paths: InstancePaths, spec: InstanceSpec) -> None:
        moment = time.time() - _MARGIN_S
        position = archive.position(paths, spec)
        files = archive.files(paths, spec, self.target.since)
        if self._shipped is None:
            self._shipped = self.logs.inventory()
        for file in files:
            self._ship(file, self._shipped.setdefault(file.name, Shipped()))
        self._samples.append((moment, position))
        covered = [t for t, p in self._samples if _covers(files, self._shipped, p)]
        if covered:
            newest = max(covered)
            while self._samples and self._samples[0][0] <= newest:
                self._samples.popleft()
            if self.restorable_until is None or newest > self.restorable_until:
                self.restorable_until = newest

    def _ship(self, file: LogFile, shipped: Shipped) -> None:
        if shipped.complete:
            return
        if file.complete:
            self.logs.put_whole(file.name, file.path, file.ready)
            shipped.complete = True
            if shipped.parts:
                self.logs.delete_parts(file.name)
                shipped.parts.clear()
        elif file.ready > shipped.end:
            self.logs.put_part(file.name, file.path, shipped.end, file.ready)
            shipped.parts.append((shipped.end, file.ready))


def _covers(files: list[LogFile], shipped: dict[str, Shipped], position: LogPosition) -> bool:
    """Whether everything before ``position`` is stored: its file is listed and stored
    up to its offset, and every listed file before it is stored whole."""
    for file in files:
        done = shipped.get(file.name, Shipped())
        if file.name == position.name:
            return done.complete or done.end >= position.offset
        if not done.complete:
            return False
    return False


class LogShipping:
    """Runs the rounds of every instance (the asyncio side)."""

    def __init__(self, *, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coffer-logship")
        self._shippers: dict[str, InstanceShipper] = {}
        self._busy: set[str] = set()

    def restorable_until(self, instance_id: str) -> float | None:
        shipper = self._shippers.get(instance_id)
        return shipper.restorable_until if shipper else None

    def set_target(self, instance_id: str, target: ArchiveTarget) -> None:
        shipper = self._shippers.get(instance_id)
        if (
            shipper is None
            or shipper.target.store != target.store
            or (shipper.target.prefix != target.prefix or shipper.target.key != target.key)
        ):
            self._shippers[instance_id] = InstanceShipper(instance_id, target)
        else:
            shipper.target = target

    def has_target(self, instance_id: str) -> bool:
        return instance_id in self._shippers

    def forget(self, live: set[str]) -> None:
        for instance_id in set(self._shippers) - live:
            del self._shippers[instance_id]

    def start_round(
        self, instance_id: str, archive: LogArchive, paths: InstancePaths, spec: InstanceSpec
    ) -> None:
        """Start a round for the instance unless one is still running."""
        shipper = self._shippers.get(instance_id)
        if shipper is None or instance_id in self._busy:
            return
        self._busy.add(instance_id)
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, shipper.round, archive, paths, spec
        )
        future.add_done_callback(lambda _: self._busy.discard(instance_id))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
