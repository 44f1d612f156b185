"""The agent's side of instance logs: show, publish and discard them (``domain.guest_logs``).

A log's text is a file on the host (``Engine.guest_logs``). Publishing copies what was
written since the last publish — up to the last complete line — to the object store as
one object ``<prefix>log-<offset>`` (``offset``: where in the file it starts, 16 digits,
so names sort in log order and a publish repeated after a crash replaces the same
object), then rewrites the metafile: ``{"log_name", "log_type", "log_file",
"log_size", "log_header_digest"}``, Trove's fields, ``log_size`` being the bytes
published. A file that shrank or whose first line changed since (the engine started it
again) is *rotated*: the next publish first discards what was published. Discarding
removes every object under the prefix and the metafile.

Runs in a worker thread; the executor runs one log command per instance at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coffer.contracts.engine import InstanceSpec
from coffer.domain.guest_logs import (
    LogAction,
    LogDef,
    LogType,
    derive_status,
    metafile_key,
)
from coffer.engines.base import Engine, InstancePaths
from coffer.errors import BadRequest, NotImplementedByDatastore, StorageNotFound
from coffer.storage import ObjectStore, StoreConfig, open_store

__all__ = ["run_log_op"]

_CHUNK = 1 << 20
#: the first line's digest covers at most this many bytes
_HEADER_BYTES = 4096


@dataclass(frozen=True)
class _Published:
    size: int = 0
    digest: str = ""


@dataclass(frozen=True)
class _Source:
    path: Path
    #: bytes in the file now (0: absent or empty)
    size: int
    digest: str


def run_log_op(
    engine: Engine, paths: InstancePaths, spec: InstanceSpec, payload: dict[str, Any]
) -> dict[str, Any]:
    """Carry out ``payload["op"]`` (show, publish or discard) on the logs named in
    ``payload["prefixes"]`` (name → object prefix) with the store ``payload["store"]``;
    return ``{"logs": [GuestLog view, ...]}`` in the order given."""
    if engine.guest_logs is None:
        raise NotImplementedByDatastore(f"{spec.engine} does not publish its logs")
    op = LogAction(payload["op"])
    store_config = StoreConfig.model_validate(payload["store"])
    store = open_store(store_config)
    defs = {d.name: d for d in engine.catalog.guest_logs}
    views = []
    for name, prefix in payload["prefixes"].items():
        if name not in defs:
            raise BadRequest(f"datastore {spec.engine} has no log {name!r}")
        log = _Log(defs[name], spec, engine.guest_logs.path(paths, spec, name), store, prefix)
        if op is LogAction.PUBLISH:
            log.publish()
        elif op is LogAction.DISCARD:
            log.discard()
        elif op is not LogAction.SHOW:
            raise BadRequest(f"the agent does not {op.value} logs: the control plane does")
        views.append(log.view(store_config.container))
    return {"logs": views}


class _Log:
    def __init__(
        self, d: LogDef, spec: InstanceSpec, path: Path, store: ObjectStore, prefix: str
    ) -> None:
        self.d = d
        self.enabled = d.type is LogType.SYS or d.name in spec.logs
        self.path = path
        self.store = store
        self.prefix = prefix
        self.metafile = metafile_key(prefix)

    def view(self, container: str) -> dict[str, Any]:
        source, published = _source(self.path), self._published()
        rotated = _rotated(source, published)
        status = derive_status(
            log_type=self.d.type,
            enabled=self.enabled,
            size=source.size,
            published=published.size,
            rotated=rotated,
        )
        return {
            "name": self.d.name,
            "type": self.d.type.value,
            "status": status.value,
            "published": published.size,
            "pending": source.size if rotated else max(0, source.size - published.size),
            "container": container if published.size else "None",
            "prefix": self.prefix if published.size else "None",
            "metafile": self.metafile,
        }

    def publish(self) -> None:
        source, published = _source(self.path), self._published()
        if _rotated(source, published):
            self.discard()
            published = _Published()
        if source.size <= published.size:
            return  # nothing new (or no file yet)
        end = _last_line_end(source.path, published.size, source.size)
        if end <= published.size:
            return
        key = f"{self.prefix}log-{published.size:016d}"
        self.store.put(key, _read_range(source.path, published.size, end))
        meta = {
            "log_name": self.d.name,
            "log_type": self.d.type.value,
            "log_file": source.path.name,
            "log_size": end,
            "log_header_digest": source.digest,
        }
        self.store.put(self.metafile, [json.dumps(meta).encode()])

    def discard(self) -> None:
        self.store.purge(self.prefix)
        self.store.delete(self.metafile)

    def _published(self) -> _Published:
        try:
            raw = b"".join(self.store.get(self.metafile))
        except StorageNotFound:
            return _Published()
        try:
            meta = json.loads(raw)
            return _Published(int(meta["log_size"]), str(meta["log_header_digest"]))
        except (ValueError, KeyError, TypeError):
            return _Published()  # unreadable: treated as nothing published


def _source(path: Path) -> _Source:
    try:
        with open(path, "rb") as f:
            first = f.readline(_HEADER_BYTES)
            size = f.seek(0, 2)
    except FileNotFoundError:
        return _Source(path, 0, "")
    return _Source(path, size, hashlib.sha256(first).hexdigest())


def _rotated(source: _Source, published: _Published) -> bool:
    """The file is not the one published from: it shrank or its first line changed."""
    if not published.size:
        return False
    return source.size < published.size or source.digest != published.digest


def _last_line_end(path: Path, start: int, end: int) -> int:
    """The offset just past the last newline in ``path[start:end]`` (``start`` if none):
    a line still being written waits for the next publish."""
    position = end
    with open(path, "rb") as f:
        while position > start:
            low = max(start, position - _CHUNK)
            f.seek(low)
            block = f.read(position - low)
            newline = block.rfind(b"\n")
            if newline >= 0:
                return low + newline + 1
            position = low
    return start


def _read_range(path: Path, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
