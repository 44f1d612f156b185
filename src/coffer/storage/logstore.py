"""One instance's shipped change log (WAL, binary log) in an object store.

Layout under ``<prefix>/`` (``<project>/<instance>/logs``):

* ``<name>`` — the whole file, stored once the engine reported it complete;
* ``<name>.part/<start>-<end>`` — bytes ``[start, end)`` of a file still being written
  (offsets zero-padded to 12 digits so that keys sort by offset). Once the whole file is
  stored its parts are deleted; a reader finding both uses the whole object.

Every object is sealed (``storage.sealed``: zstd, AES-256-GCM) with the instance's log
key; the context binds it to the instance, the file name and, for a part, its offsets, so
an object swapped, moved, re-ordered, cut short or altered fails authentication
(``IntegrityError``) when read. Names are the engine's file names (letters, digits,
``.``, ``-``, ``_``).

``LogStore`` is a ``LogSource`` (``names``/``open``) for restores and has what the agent's
shipper needs (``inventory``, ``put_whole``, ``put_part``) and what deletions need
(``prune_before``).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from coffer.errors import IntegrityError, StorageNotFound
from coffer.storage.base import ObjectStore
from coffer.storage.sealed import seal, unseal

__all__ = ["LogStore", "Shipped"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_PART = re.compile(r"(?P<name>[^/]+)\.part/(?P<start>\d{12})-(?P<end>\d{12})")
_CHUNK = 1 << 20


@dataclass
class Shipped:
    """What the store holds of one log file."""

    #: the whole file is stored
    complete: bool = False
    #: the stored parts, ``(start, end)``, by start
    parts: list[tuple[int, int]] = field(default_factory=list)

    @property
    def end(self) -> int:
        """Bytes from the start of the file held without a gap (parts only)."""
        end = 0
        for start, stop in self.parts:
            if start != end:
                break
            end = stop
        return end


class LogStore:
    def __init__(self, store: ObjectStore, prefix: str, key: bytes, instance_id: str) -> None:
        self.store = store
        self.prefix = prefix.rstrip("/") + "/"
        self._key = key
        self._instance = instance_id

    # -- reading (the LogSource seam) ----------------------------------------------------

    def inventory(self) -> dict[str, Shipped]:
        """Every stored file and what of it is stored (one listing of the prefix)."""
        found: dict[str, Shipped] = {}
        for key in self.store.list(self.prefix):
            rest = key[len(self.prefix) :]
            if _NAME.fullmatch(rest):
                found.setdefault(rest, Shipped()).complete = True
            elif (part := _PART.fullmatch(rest)) and _NAME.fullmatch(part["name"]):
                span = (int(part["start"]), int(part["end"]))
                found.setdefault(part["name"], Shipped()).parts.append(span)
        for shipped in found.values():
            shipped.parts.sort()
        return found

    def names(self) -> list[str]:
        return sorted(self.inventory())

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        """The file's stored bytes: the whole object, else its parts joined in order
        (``IntegrityError`` if they do not join from offset 0)."""
        shipped = self.inventory().get(name)
        if shipped is None:
            raise StorageNotFound(f"log file {name} was never shipped to {self.store.describe()}")
        if shipped.complete:
            reader = self._read(self._whole_key(name), self._context(name))
        else:
            if shipped.end != (shipped.parts[-1][1] if shipped.parts else 0):
                raise IntegrityError(f"the shipped parts of log file {name} have a gap")
            parts = (
                self._read(self._part_key(name, start, end), self._context(name, start, end))
                for start, end in shipped.parts
            )
            reader = io.BufferedReader(_Joined(parts), buffer_size=_CHUNK)
        try:
            yield reader
        finally:
            reader.close()

    # -- writing (the shipper) -----------------------------------------------------------

    def put_whole(self, name: str, path: Path, size: int) -> None:
        """Store the first ``size`` bytes of ``path`` as the whole file ``name``."""
        self._put(self._whole_key(name), path, 0, size, self._context(name))

    def put_part(self, name: str, path: Path, start: int, end: int) -> None:
        """Store bytes ``[start, end)`` of ``path`` as a part of file ``name``."""
        self._put(
            self._part_key(name, start, end), path, start, end, self._context(name, start, end)
        )

    def delete_parts(self, name: str) -> None:
        for start, end in self.inventory().get(name, Shipped()).parts:
            self.store.delete(self._part_key(name, start, end))

    def prune_before(self, name: str) -> int:
        """Delete every file whose name sorts before ``name``; how many were deleted."""
        removed = 0
        for key in self.store.list(self.prefix):
            rest = key[len(self.prefix) :]
            if rest.split(".part/", 1)[0] < name:
                self.store.delete(key)
                removed += 1
        return removed

    # -- keys and sealing ----------------------------------------------------------------

    def _whole_key(self, name: str) -> str:
        return self.prefix + _checked(name)

    def _part_key(self, name: str, start: int, end: int) -> str:
        return f"{self.prefix}{_checked(name)}.part/{start:012d}-{end:012d}"

    def _context(self, name: str, start: int | None = None, end: int | None = None) -> bytes:
        span = "" if start is None else f"@{start}-{end}"
        return f"{self._instance}/logs/{name}{span}".encode()

    def _put(self, key: str, path: Path, start: int, end: int, context: bytes) -> None:
        with open(path, "rb") as source:
            source.seek(start)
            self.store.put(key, seal(_read_span(source, end - start, path), self._key, context))

    def _read(self, key: str, context: bytes) -> BinaryIO:
        return unseal(self.store.get(key), self._key, context)


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a log file name")
    return name


def _read_span(source: BinaryIO, length: int, path: Path) -> Iterator[bytes]:
    left = length
    while left > 0:
        chunk = source.read(min(left, _CHUNK))
        if not chunk:
            raise OSError(f"{path} ended {left} bytes before the part to ship")
        left -= len(chunk)
        yield chunk


class _Joined(io.RawIOBase):
    """One reader over several, in order (each is closed once read to its end)."""

    def __init__(self, readers: Iterator[BinaryIO]) -> None:
        self._readers = readers
        self._current: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self._current is None:
                self._current = next(self._readers, None)
                if self._current is None:
                    return 0
            data = self._current.read(len(buffer))
            if data:
                buffer[: len(data)] = data
                return len(data)
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        super().close()
