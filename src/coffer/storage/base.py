"""The object-store seam: where backups (and, later, archived logs) are kept.

A store holds immutable objects under string keys (``/``-separated, e.g.
``<project>/<backup id>/data``). Three implementations: a local directory (the default),
OpenStack Swift (python-swiftclient) and S3 (boto3). Every method may raise
``coffer.errors.StorageError`` with a message naming the store and the key (never a
credential); a missing key raises ``StorageNotFound`` (a subclass). A malformed key (see
``check_key``) raises ``coffer.errors.BadRequest`` naming the key, before anything is
touched.

Contract for every implementation:

* ``put`` consumes ``chunks`` once, streaming (memory stays bounded whatever the size: no
  whole-object buffer), and makes the object visible under ``key`` only once all of it is
  stored (a reader never sees a partial object; a failed put leaves no object and no
  leftover parts). Putting an existing key replaces it. Returns the stored size in bytes.
* ``get`` yields the object's bytes in order, in chunks of any size, without reading it
  all into memory.
* ``delete`` is idempotent (deleting a missing key is not an error).
* ``get`` and ``size`` raise ``StorageNotFound`` for a missing key when called (``get``
  before its first chunk); ``exists`` answers ``False`` instead.
* ``list`` returns the keys starting with ``prefix``, sorted.
* ``purge(prefix)`` deletes every object whose key starts with ``prefix`` and every
  leftover of an unfinished put (a killed process's) of such a key: temporary files,
  segments no manifest points at, multipart uploads never completed nor aborted. The
  prefix must end with ``/`` (see ``check_prefix``; anything else raises ``BadRequest``
  and deletes nothing), so it names a whole "directory" and never a sibling key.
  Idempotent; returns how many things it removed (0 when nothing was there). Leftovers
  are found by their names, so a put of a key under ``prefix`` must not run meanwhile.
* If ``chunks`` itself raises, ``put`` cleans up and re-raises that same exception; store
  failures become ``StorageError``.
* Constructing a store does no I/O; the first operation connects (and a ``put`` creates
  the container or bucket if it is missing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from coffer.errors import BadRequest, StorageNotFound

#: The longest key every store accepts (Swift's and S3's object name limit).
MAX_KEY_BYTES = 1024


class StoreConfig(BaseModel):
    """Where a deployment keeps its backups. Travels to agents inside command payloads
    (it may hold credentials: never log it).

    * ``directory``: ``location`` is an absolute path on the host running the agent.
    * ``swift``: ``location`` is the tempauth/keystone v1 auth URL, ``container`` the
      container, ``user``/``key`` the credentials.
    * ``s3``: ``location`` is the endpoint URL, ``container`` the bucket, ``user``/``key``
      the access key and secret, ``region`` the region.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["directory", "swift", "s3"] = "directory"
    location: str
    container: str = "coffer-backups"
    user: str | None = None
    key: str | None = Field(default=None, repr=False)
    region: str = "us-east-1"


class ObjectStore(Protocol):
    """See the module docstring for the contract."""

    def put(self, key: str, chunks: Iterable[bytes]) -> int: ...

    def get(self, key: str) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str = "") -> list[str]: ...

    def purge(self, prefix: str) -> int: ...

    def describe(self) -> str:
        """A short human description without secrets, e.g. ``swift container 'x'``."""
        ...


def check_key(key: str) -> str:
    """Return ``key`` if every store can hold it, else raise ``BadRequest`` naming it.

    A key is 1 to ``MAX_KEY_BYTES`` bytes of UTF-8 without control characters, made of
    ``/``-separated segments that are neither empty (no leading, trailing or doubled
    ``/``) nor ``.`` or ``..``.
    """
    if not isinstance(key, str) or not key:
        raise BadRequest(f"object key {key!r} is empty or not a string")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"object key {key!r} is not valid UTF-8 text") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise BadRequest(f"object key {key[:60]!r}... is longer than {MAX_KEY_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise BadRequest(f"object key {key!r} contains control characters")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise BadRequest(
                f"object key {key!r} has an empty, '.' or '..' segment "
                "(no leading, trailing or doubled '/')"
            )
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it may be purged, else raise ``BadRequest`` naming it.

    A purge prefix is a valid key (see ``check_key``) followed by ``/``: never empty, so
    a purge cannot take a whole store by mistake.
    """
    if not isinstance(prefix, str) or not prefix.endswith("/") or prefix == "/":
        raise BadRequest(
            f"object prefix {prefix!r} must be a key followed by '/' (e.g. 'project/backup/')"
        )
    try:
        check_key(prefix[:-1])
    except BadRequest as exc:
        raise BadRequest(f"object prefix {prefix!r} is not a key followed by '/': {exc}") from None
    return prefix


def growing_size(index: int, *, first: int, double_every: int, largest: int) -> int:
    """Size of the ``index``-th part of a multi-part upload: ``first`` for the first
    ``double_every`` parts, then doubling every ``double_every`` parts up to ``largest``.

    Keeps the part count of huge objects under the stores' limits (Swift: 1000 SLO
    segments, S3: 10000 parts) while small objects use small parts.
    """
    return min(first << (index // double_every), max(largest, first))


def exists_by_size(size: Callable[[str], int], key: str) -> bool:
    """``exists`` for a store whose ``size`` raises ``StorageNotFound`` for a missing key:
    True if ``size(key)`` answers, False if it raises ``StorageNotFound``; any other error
    (a malformed key, a store failure) propagates."""
    try:
        size(key)
    except StorageNotFound:
        return False
    return True


def read_through(
    chunks: Iterable[bytes],
    errors: contextlib.AbstractContextManager[object],
    close: Callable[[], object],
) -> Iterator[bytes]:
    """Yield ``chunks`` inside ``errors`` (the store's translation of client-library
    failures into ``StorageError``), then call ``close`` (release the response or
    connection) however the reading ends: exhausted, failed or abandoned. Nothing is
    entered, iterated or closed before the first ``next``: ``chunks`` must be lazy."""
    try:
        with errors:
            yield from chunks
    finally:
        close()


class Source:
    """The caller's chunks as a ``put`` consumes them: skips empty chunks (an empty chunk
    ends an HTTP chunked body), counts bytes, and remembers an exception the chunks raise,
    so a store can re-raise that exception itself when a client library wraps it."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self.size = 0
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    @contextlib.contextmanager
    def own_error_first(self) -> Iterator[None]:
        """Inside, any exception becomes the one the caller's chunks raised, if they
        raised one (a client library may have wrapped it or failed because of it);
        otherwise it propagates unchanged."""
        try:
            yield
        except BaseException:
            if self.error is not None:
                raise self.error from None
            raise

    def __next__(self) -> bytes:
        while True:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                raise
            except BaseException as exc:
                self.error = exc
                raise
            if chunk:
                self.size += len(chunk)
                return bytes(chunk) if not isinstance(chunk, bytes) else chunk
