"""Streaming backups between engines and object stores.

Engines push: they write a backup into a file-like sink. Stores pull: ``put`` iterates
over chunks. ``upload`` bridges the two with one worker thread and a bounded channel (a
few MiB in flight at most), sealing on the way; ``download`` is a reader over a stored
object that unseals and checks it on the way. Nothing is staged on disk.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, TypeVar

from coffer.errors import IntegrityError, StorageError
from coffer.storage.base import ObjectStore
from coffer.storage.sealed import SealedStream, SealStats, seal, unseal

__all__ = ["download", "upload"]

T = TypeVar("T")

_IN_FLIGHT = 4 << 20
"""Bytes queued between the producer and the store at most (plus one piece)."""
_PIECE = 256 << 10
"""The sink's buffer, and the largest piece put in the channel."""
_PROGRESS_INTERVAL = 0.5


class _UploadAbandoned(Exception):
    """Raised into ``ObjectStore.put`` when the producer failed, so the store keeps nothing."""


class _Channel:
    """A bounded byte queue from one producer thread to one consumer thread.

    Either side can break it: ``abort`` (producer failed) makes the consumer's iteration
    raise; ``stop`` (consumer ended) makes the producer's next ``put`` raise.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._cond = threading.Condition()
        self._pieces: deque[bytes] = deque()
        self._queued = 0
        self._closed = False
        self._aborted = False
        self._stopped = False
        self._failure: BaseException | None = None

    def put(self, piece: bytes) -> None:
        """Queue ``piece``, blocking while the channel is full. Raises ``StorageError``
        once the consumer has ended."""
        with self._cond:
            while self._queued >= self._limit and not self._stopped:
                self._cond.wait()
            if self._stopped:
                raise StorageError(f"the upload has stopped: {self._failure or 'store ended'}")
            self._pieces.append(piece)
            self._queued += len(piece)
            self._cond.notify_all()

    def close(self) -> None:
        """The producer is done: the consumer's iteration ends after the queued pieces."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def abort(self) -> None:
        """The producer failed: the consumer's iteration raises ``_UploadAbandoned``."""
        with self._cond:
            self._aborted = True
            self._pieces.clear()
            self._cond.notify_all()

    def stop(self, failure: BaseException | None) -> None:
        """The consumer ended (with ``failure`` if it failed)."""
        with self._cond:
            self._stopped = True
            self._failure = failure
            self._pieces.clear()
            self._queued = 0
            self._cond.notify_all()

    def pieces(self) -> Iterator[bytes]:
        """The consumer's side: the queued pieces in order until ``close``."""
        while True:
            with self._cond:
                while not self._pieces and not self._closed and not self._aborted:
                    self._cond.wait()
                if self._aborted:
                    raise _UploadAbandoned("the backup's producer failed; upload abandoned")
                if not self._pieces:
                    return
                piece = self._pieces.popleft()
                self._queued -= len(piece)
                self._cond.notify_all()
            yield piece


class _Sink(io.RawIOBase):
    """The producer's side: writes go to the channel; progress is reported now and then."""

    def __init__(self, channel: _Channel, progress: Callable[[int], None] | None) -> None:
        super().__init__()
        self._channel = channel
        self._progress = progress
        self._last_report = time.monotonic()
        self.written = 0
        self.discarding = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.discarding:
            return len(view)
        for start in range(0, len(view), _PIECE):
            self._channel.put(bytes(view[start : start + _PIECE]))
        self.written += len(view)
        self._report()
        return len(view)

    def _report(self) -> None:
        now = time.monotonic()
        if self._progress is not None and now - self._last_report >= _PROGRESS_INTERVAL:
            self._last_report = now
            self._progress(self.written)


class _StoreWorker(threading.Thread):
    """Runs ``store.put(key, sealed)``; keeps the stored size or the error."""

    def __init__(
        self, store: ObjectStore, key: str, sealed: SealedStream, channel: _Channel
    ) -> None:
        super().__init__(name=f"coffer-upload {key}", daemon=True)
        self._store = store
        self._key = key
        self._sealed = sealed
        self._channel = channel
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            size = self._store.put(self._key, self._sealed)
            problem = self._check(size)
            if problem is not None:
                self._store.delete(self._key)
                raise StorageError(f"{self._store.describe()} {problem}")
        except BaseException as exc:
            self.error = exc
        finally:
            self._channel.stop(self.error)

    def _check(self, size: int) -> str | None:
        """What is wrong with a put that returned ``size`` (a broken store), if anything."""
        if not self._sealed.finished:
            return f"stopped reading {self._key} before its end"
        if size != self._sealed.stats.stored_bytes:
            return (
                f"stored {size} bytes of {self._key}, {self._sealed.stats.stored_bytes} were sent"
            )
        return None


def upload(
    store: ObjectStore,
    key: str,
    produce: Callable[[BinaryIO], T],
    *,
    data_key: bytes,
    context: bytes,
    progress: Callable[[int], None] | None = None,
) -> tuple[T, SealStats]:
    """Store what ``produce(sink)`` writes under ``key``, sealed (see ``sealed``).

    ``produce`` runs in the calling thread; a worker thread runs ``store.put``. If
    ``produce`` raises, the put is abandoned (the store keeps no object) and that exception
    propagates. If the store fails, ``produce``'s next write to ``sink`` raises
    ``StorageError`` and the store's own error propagates from ``upload``. The worker is
    joined before returning in every case. ``progress(plaintext_bytes_so_far)`` is called
    at most every half second from the calling thread, and once with the total at the end.
    Returns ``produce``'s result and the stream's stats.
    """
    channel = _Channel(_IN_FLIGHT)
    sealed = seal(channel.pieces(), data_key, context)
    worker = _StoreWorker(store, key, sealed, channel)
    raw_sink = _Sink(channel, progress)
    sink = io.BufferedWriter(raw_sink, buffer_size=_PIECE)
    worker.start()
    try:
        result = produce(sink)
        if not sink.closed:
            sink.flush()
    except BaseException:
        store_failed_first = worker.error is not None
        channel.abort()
        raw_sink.discarding = True
        sink.close()
        worker.join()
        if store_failed_first and worker.error is not None:
            raise worker.error from None
        raise
    channel.close()
    worker.join()
    sink.close()
    if worker.error is not None:
        raise worker.error
    if progress is not None:
        progress(raw_sink.written)
    return result, sealed.stats


@contextmanager
def download(
    store: ObjectStore,
    key: str,
    *,
    data_key: bytes,
    context: bytes,
    expected_sha256: str | None,
) -> Iterator[BinaryIO]:
    """A reader of the plaintext of the object under ``key``; see ``sealed.unseal``.

    Reads may raise ``StorageError`` from the store and ``IntegrityError`` for a damaged
    object; when the stored bytes end, their SHA-256 is compared with ``expected_sha256``
    (if given) before end-of-file is returned, so a swapped object is caught too. A reader
    closed before its end checked only what it read.
    """
    chunks = _checksummed(store.get(key), expected_sha256, context)
    try:
        reader = unseal(chunks, data_key, context)
    except BaseException:
        chunks.close()
        raise
    try:
        yield reader
    finally:
        reader.close()


def _checksummed(
    chunks: Iterable[bytes], expected_sha256: str | None, context: bytes
) -> Generator[bytes, None, None]:
    digest = hashlib.sha256()
    try:
        for chunk in chunks:
            digest.update(chunk)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()
    if expected_sha256 is not None and digest.hexdigest() != expected_sha256.lower():
        name = context.decode("utf-8", "replace")
        raise IntegrityError(
            f"backup {name}: stored checksum {digest.hexdigest()} differs from the recorded "
            f"{expected_sha256}: tampered with or truncated"
        )
