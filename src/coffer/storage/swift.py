"""The OpenStack Swift object store (python-swiftclient, v1 auth: tempauth or swauth).

Objects live in ``config.container``. A put streams and never buffers more than
``inline_limit`` bytes plus one of the caller's chunks:

* an object of at most ``inline_limit`` bytes (1 MiB by default) is one plain PUT;
* a larger one becomes a Static Large Object: its bytes are streamed, with chunked
  transfer encoding, into segments of the container ``<container>_segments`` named
  ``<key>/<upload id>/<index>``, and a manifest listing them (with their MD5s and sizes,
  checked against Swift's ETags) is PUT under ``key`` last, so the object appears whole
  or not at all. Segments are ``segment_size`` bytes (64 MiB by default) for the first
  100, then double every 100 up to 4 GiB (Swift's object limit is 5 GiB), so the
  1000-segment limit of a manifest is reached only past about 2 TiB.

A failed put deletes the segments it uploaded; a put that replaces a large object deletes
the old object's segments once the new object is in place; a delete of a large object
deletes its manifest, then its segments. Segments that cannot be deleted after the object
is gone or replaced are logged, not raised; a put that crashes (process killed) can leave
segments under ``<key>/`` in the segments container, which ``purge`` of a prefix of
``key`` finds by name and deletes.

One Connection is made per operation, reusing the auth token of the previous one, so a
store may be shared between threads. Keys used with a segmented put must leave room for
the segment suffix (at most 982 bytes).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from requests.exceptions import RequestException
from swiftclient.client import ClientException, Connection

from coffer.errors import BadRequest, StorageError, StorageNotFound
from coffer.storage.base import (
    MAX_KEY_BYTES,
    Source,
    StoreConfig,
    check_key,
    check_prefix,
    exists_by_size,
    growing_size,
    read_through,
)

log = logging.getLogger("coffer.storage.swift")

MiB = 1 << 20
SEGMENT_SIZE = 64 * MiB
INLINE_LIMIT = 1 * MiB
LARGEST_SEGMENT = 4096 * MiB
SEGMENTS_PER_SIZE = 100
MAX_SEGMENTS = 1000
READ_CHUNK = 1 * MiB
SEGMENT_SUFFIX = 1 + 32 + 1 + 8  # "/<upload id>/<index>"
#: a segment's name: ``<key>/<upload id>/<index>``
_SEGMENT_NAME = re.compile(r"(?s)(.+)/[0-9a-f]{32}/[0-9]{8}")


class SwiftStore:
    """A Swift container as an object store. Constructing it does no I/O."""

    def __init__(
        self,
        config: StoreConfig,
        *,
        segment_size: int = SEGMENT_SIZE,
        inline_limit: int = INLINE_LIMIT,
        timeout: float = 120.0,
        retries: int = 2,
    ) -> None:
        _check_config(config)
        if segment_size < 1 or inline_limit < 0:
            raise ValueError("segment_size must be positive and inline_limit not negative")
        self._config = config
        self.container = config.container
        self.segments_container = f"{config.container}_segments"
        self._segment_size = segment_size
        self._inline_limit = min(inline_limit, segment_size)
        self._timeout = timeout
        self._retries = retries
        self._auth: tuple[str, str] | None = None  # (storage URL, token) from the last auth
        self._containers_ready = False

    def describe(self) -> str:
        return f"swift container {self.container!r} at {self._config.location}"

    # ---------------------------------------------------------------- put
    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        check_key(key)
        source = Source(chunks)
        with source.own_error_first():
            with self._session("store", key) as conn:
                self._ensure_containers(conn)
                old_segments = self._segments_of(conn, key)
            head, ended = _read_head(source, self._inline_limit)
            if ended:
                self._put_whole(key, b"".join(head))
            else:
                self._put_segmented(key, itertools.chain(head, source))
        self._delete_segments(old_segments, reason=f"replaced object {key!r}")
        return source.size

    def _put_whole(self, key: str, data: bytes) -> None:
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        with self._session("store", key) as conn:
            conn.put_object(self.container, key, data, content_length=len(data), etag=digest)

    def _put_segmented(self, key: str, stream: Iterator[bytes]) -> None:
        if len(key.encode()) + SEGMENT_SUFFIX > MAX_KEY_BYTES:
            raise BadRequest(
                f"object key {key[:60]!r}... is too long for a segmented Swift object "
                f"(at most {MAX_KEY_BYTES - SEGMENT_SUFFIX} bytes)"
            )
        upload = uuid.uuid4().hex
        splitter = _Splitter(stream)
        manifest: list[dict[str, Any]] = []
        uploaded: list[str] = []
        try:
            for index in itertools.count():
                if splitter.at_end():
                    break
                if index == MAX_SEGMENTS:
                    raise StorageError(
                        f"{self.describe()}: cannot store {key!r}: larger than "
                        f"{MAX_SEGMENTS} segments"
                    )
                name = f"{key}/{upload}/{index:08d}"
                uploaded.append(name)
                limit = growing_size(
                    index,
                    first=self._segment_size,
                    double_every=SEGMENTS_PER_SIZE,
                    largest=LARGEST_SEGMENT,
                )
                manifest.append(self._put_segment(key, name, splitter.take(limit)))
            with self._session("store", key) as conn:
                conn.put_object(
                    self.container,
                    key,
                    json.dumps(manifest),
                    query_string="multipart-manifest=put",
                    content_type="application/octet-stream",
                )
        except BaseException:
            self._delete_segments(
                [(self.segments_container, n) for n in uploaded], reason=f"failed put {key!r}"
            )
            raise

    def _put_segment(self, key: str, name: str, pieces: Iterator[bytes]) -> dict[str, Any]:
        """Stream one segment (chunked transfer, no retry: the bytes cannot be replayed)."""
        digest = hashlib.md5(usedforsecurity=False)
        size = 0

        def hashed() -> Iterator[bytes]:
            nonlocal size
            for piece in pieces:
                digest.update(piece)
                size += len(piece)
                yield piece

        with self._session("store", key, retries=0) as conn:
            etag = conn.put_object(self.segments_container, name, hashed())
        if etag != digest.hexdigest():
            raise StorageError(
                f"{self.describe()}: segment {name!r} of {key!r} was corrupted in transit "
                f"(sent MD5 {digest.hexdigest()}, Swift stored {etag})"
            )
        return {"path": f"/{self.segments_container}/{name}", "etag": etag, "size_bytes": size}

    def _ensure_containers(self, conn: Connection) -> None:
        if not self._containers_ready:
            conn.put_container(self.container)
            conn.put_container(self.segments_container)
            self._containers_ready = True

    def _segments_of(self, conn: Connection, key: str) -> list[tuple[str, str]]:
        """(container, name) of the segments of ``key`` if it is a large object of ours."""
        try:
            headers = conn.head_object(self.container, key)
            if headers.get("x-static-large-object", "").lower() != "true":
                return []
            _, body = conn.get_object(self.container, key, query_string="multipart-manifest=get")
        except ClientException as exc:
            if exc.http_status == 404:
                return []
            raise
        segments = []
        for entry in json.loads(body):
            container, _, name = entry["name"].lstrip("/").partition("/")  # not URL-quoted
            if container == self.segments_container:
                segments.append((container, name))
        return segments

    def _delete_segments(self, segments: list[tuple[str, str]], *, reason: str) -> None:
        """Best effort: segments that cannot be deleted are logged, not raised."""
        if not segments:
            return
        left = []
        try:
            with self._session("delete segments of", reason) as conn:
                for container, name in segments:
                    try:
                        conn.delete_object(container, name)
                    except ClientException as exc:
                        if exc.http_status != 404:
                            left.append(name)
        except StorageError as exc:
            log.warning("%s: segments of %s left behind: %s", self.describe(), reason, exc)
            return
        if left:
            log.warning(
                "%s: %d segments of %s left behind (first: %r)",
                self.describe(),
                len(left),
                reason,
                left[0],
            )

    # ---------------------------------------------------------------- purge
    def purge(self, prefix: str) -> int:
        """Deletes the objects under ``prefix`` (a large object's manifest, not through
        ``multipart-manifest=delete``), then every segment a put of a key under ``prefix``
        uploaded, whether a manifest points at it or not: segments are found by their
        names (``<key>/<upload id>/<index>``), so those of an object outside the prefix
        (``prefix[:-1]`` itself) are left alone. Returns objects plus segments deleted."""
        check_prefix(prefix)
        removed = self._delete_names(self.container, self._names(self.container, prefix), prefix)
        orphans = [
            name
            for name in self._names(self.segments_container, prefix)
            if (match := _SEGMENT_NAME.fullmatch(name)) and match[1].startswith(prefix)
        ]
        return removed + self._delete_names(self.segments_container, orphans, prefix)

    def _names(self, container: str, prefix: str) -> list[str]:
        """Every name in ``container`` starting with ``prefix`` ([] if no container)."""
        try:
            with self._session("list", prefix) as conn:
                _, objects = conn.get_container(container, prefix=prefix, full_listing=True)
        except StorageNotFound:
            return []
        return [obj["name"] for obj in objects]

    def _delete_names(self, container: str, names: list[str], prefix: str) -> int:
        """Delete ``names`` from ``container``; how many were there to delete."""
        deleted = 0
        if names:
            with self._session("purge", prefix) as conn:
                for name in names:
                    try:
                        conn.delete_object(container, name)
                    except ClientException as exc:
                        if exc.http_status != 404:
                            raise
                        continue
                    deleted += 1
        return deleted

    # ---------------------------------------------------------------- reads
    def get(self, key: str) -> Iterator[bytes]:
        check_key(key)
        conn = self._connect(self._retries)
        try:
            with self._errors("read", key):
                _, body = conn.get_object(self.container, key, resp_chunk_size=READ_CHUNK)
        except BaseException:
            conn.close()
            raise
        self._remember(conn)
        return read_through(body, self._errors("read", key), conn.close)

    def exists(self, key: str) -> bool:
        return exists_by_size(self.size, key)

    def size(self, key: str) -> int:
        check_key(key)
        with self._session("look up", key) as conn:
            headers = conn.head_object(self.container, key)
        return int(headers["content-length"])

    def list(self, prefix: str = "") -> list[str]:
        try:
            with self._session("list", prefix or "(all keys)") as conn:
                _, objects = conn.get_container(self.container, prefix=prefix, full_listing=True)
        except StorageNotFound:
            return []  # no container yet: nothing stored
        return sorted(obj["name"] for obj in objects)

    def delete(self, key: str) -> None:
        """Deletes the object (or a large object's manifest) first, then its segments.

        Not ``multipart-manifest=delete``: Swift answers that with 200 whatever happened
        (a plain object is left in place) and swiftclient does not return the body saying so.
        """
        check_key(key)
        try:
            with self._session("delete", key) as conn:
                segments = self._segments_of(conn, key)
                conn.delete_object(self.container, key)
        except StorageNotFound:
            return
        self._delete_segments(segments, reason=f"deleted object {key!r}")

    # ---------------------------------------------------------------- plumbing
    def _connect(self, retries: int) -> Connection:
        url, token = self._auth or (None, None)
        return Connection(
            authurl=self._config.location,
            user=self._config.user,
            key=self._config.key,
            preauthurl=url,
            preauthtoken=token,
            auth_version="1",
            retries=retries,
            starting_backoff=0.5,
            max_backoff=4,
            timeout=self._timeout,
        )

    def _remember(self, conn: Connection) -> None:
        if conn.url and conn.token:
            self._auth = (conn.url, conn.token)

    @contextlib.contextmanager
    def _session(
        self, action: str, key: str, *, retries: int | None = None
    ) -> Iterator[Connection]:
        conn = self._connect(self._retries if retries is None else retries)
        try:
            with self._errors(action, key):
                yield conn
        finally:
            self._remember(conn)
            conn.close()

    @contextlib.contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Turn swiftclient/transport failures into ``StorageError`` (404: ``StorageNotFound``)."""
        where = f"{self.describe()}: cannot {action} {key!r}"
        try:
            yield
        except ClientException as exc:
            status = exc.http_status
            if status == 404:
                raise StorageNotFound(f"{self.describe()} has no object {key!r}") from exc
            if status in (401, 403):
                raise StorageError(
                    f"{where}: Swift refused user {self._config.user!r} (HTTP {status}); "
                    "check the store's user and key"
                ) from exc
            detail = f"HTTP {status} {exc.http_reason}" if status else exc.msg
            raise StorageError(f"{where}: {detail}") from exc
        except (OSError, RequestException) as exc:
            raise StorageError(f"{where}: {type(exc).__name__}: {exc}") from exc


def _check_config(config: StoreConfig) -> None:
    if config.kind != "swift":
        raise BadRequest(f"a SwiftStore needs a 'swift' store config, not {config.kind!r}")
    if not config.location.startswith(("http://", "https://")):
        raise BadRequest(f"swift store location {config.location!r} is not an http(s) auth URL")
    if not config.user or not config.key:
        raise BadRequest("swift store config needs both a user and a key")
    if not config.container or "/" in config.container:
        raise BadRequest(f"swift container name {config.container!r} is empty or has a '/'")


def _read_head(source: Iterator[bytes], limit: int) -> tuple[list[bytes], bool]:
    """Chunks from ``source`` until more than ``limit`` bytes or its end; (chunks, ended)."""
    head: list[bytes] = []
    size = 0
    while size <= limit:
        try:
            chunk = next(source)
        except StopIteration:
            return head, True
        head.append(chunk)
        size += len(chunk)
    return head, False


class _Splitter:
    """Cuts a stream of non-empty chunks into consecutive pieces of bounded total size."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._carry = b""

    def at_end(self) -> bool:
        if not self._carry:
            self._carry = next(self._chunks, b"")
        return not self._carry

    def take(self, limit: int) -> Iterator[bytes]:
        """Yield the next at most ``limit`` bytes (the rest of a split chunk is kept)."""
        remaining = limit
        while remaining > 0 and not self.at_end():
            piece, self._carry = self._carry[:remaining], self._carry[remaining:]
            remaining -= len(piece)
            yield piece
