"""One contract, three object stores: a local directory, a real Swift and Swift's S3 API.

The same tests run against every store (see ``coffer.storage.base`` for the contract).
Swift and its S3 API come from one real Swift per xdist worker (``tests.support.swift``);
each test gets a container or bucket of its own, emptied and removed afterwards, and
the directory store a directory of its own, removed afterwards. Segment and part sizes
are small so that multi-segment and multipart uploads happen with little data. "Raw"
listings look past the store, with the real clients, at everything the backend holds
(temporary files, segments, unfinished multipart uploads).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import random
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from swiftclient.client import ClientException, Connection

from coffer.errors import BadRequest, StorageError, StorageNotFound
from coffer.storage import ObjectStore, StoreConfig, open_store
from coffer.storage.filesystem import TEMP_PREFIX, DirectoryStore
from coffer.storage.s3 import S3Store
from coffer.storage.swift import SwiftStore
from tests.support.swift import SwiftCluster, swift  # noqa: F401 - the session fixture

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("object_stores")]

MiB = 1 << 20
SWIFT_SEGMENT = 4 * MiB
SWIFT_INLINE = 256 * 1024
S3_PART = 5 * MiB  # S3's minimum part size
SMALL = 1000
MULTI = 12 * MiB + 12345  # 4 Swift segments, 3 S3 parts
KINDS = ["directory", "swift", "s3"]


@dataclass
class Case:
    kind: str
    store: ObjectStore
    config: StoreConfig
    #: every name the backend holds for this store, past the store's own view
    raw: Callable[[], list[str]]
    #: how many segments or parts the backend keeps for ``key`` (1 for a plain object)
    pieces: Callable[[str], int]


def chunks_of(size: int, seed: int = 1, chunk: int = 100_003) -> Iterator[bytes]:
    """``size`` pseudo-random bytes in chunks of an odd size (boundaries never align)."""
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


def digest_of(chunks: Iterator[bytes]) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    for c in chunks:
        h.update(c)
        n += len(c)
    return h.hexdigest(), n


def swift_connection(config: StoreConfig) -> Connection:
    return Connection(authurl=config.location, user=config.user, key=config.key, retries=1)


@functools.cache
def s3_client(config: StoreConfig) -> Any:
    """A plain boto3 client for looking past the store (one per config: they are slow to make)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.location,
        aws_access_key_id=config.user,
        aws_secret_access_key=config.key,
        region_name=config.region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def swift_names(conn: Connection, container: str) -> list[str]:
    try:
        return [o["name"] for o in conn.get_container(container, full_listing=True)[1]]
    except ClientException as exc:
        if exc.http_status == 404:
            return []
        raise


def remove_container(conn: Connection, container: str) -> None:
    for name in swift_names(conn, container):
        conn.delete_object(container, name)
    with contextlib.suppress(ClientException):
        conn.delete_container(container)


# ------------------------------------------------------------------ the three stores
def directory_case() -> Iterator[Case]:
    root = Path(tempfile.mkdtemp(prefix="cfstore-"))
    config = StoreConfig(kind="directory", location=str(root / "backups"))

    def raw() -> list[str]:
        return sorted(
            str(Path(d, f).relative_to(config.location))
            for d, _, files in os.walk(config.location)
            for f in files
        )

    try:
        yield Case("directory", DirectoryStore.from_config(config), config, raw, lambda _: 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def swift_case(cluster: SwiftCluster) -> Iterator[Case]:
    config = cluster.swift_config(f"t-{uuid.uuid4().hex[:12]}")
    conn = swift_connection(config)
    segments = f"{config.container}_segments"

    def raw() -> list[str]:
        return swift_names(conn, config.container) + [
            f"{segments}/{n}" for n in swift_names(conn, segments)
        ]

    def pieces(key: str) -> int:
        return sum(1 for n in swift_names(conn, segments) if n.startswith(f"{key}/")) or 1

    store = SwiftStore(config, segment_size=SWIFT_SEGMENT, inline_limit=SWIFT_INLINE)
    try:
        yield Case("swift", store, config, raw, pieces)
    finally:
        remove_container(conn, config.container)
        remove_container(conn, segments)
        conn.close()


def s3_case(cluster: SwiftCluster) -> Iterator[Case]:
    config = cluster.s3_config(f"t-{uuid.uuid4().hex[:12]}")
    s3 = s3_client(config.model_copy(update={"container": "any"}))
    conn = swift_connection(cluster.swift_config("unused"))
    segments = f"{config.container}+segments"  # where Swift's s3api keeps parts

    def uploads() -> list[dict[str, Any]]:
        try:
            return list(s3.list_multipart_uploads(Bucket=config.container).get("Uploads", []))
        except s3.exceptions.NoSuchBucket:
            return []

    def raw() -> list[str]:
        try:
            page = s3.list_objects_v2(Bucket=config.container)
        except s3.exceptions.NoSuchBucket:
            page = {}
        return (
            [o["Key"] for o in page.get("Contents", [])]
            + [f"upload:{u['Key']}" for u in uploads()]
            + [f"{segments}/{n}" for n in swift_names(conn, segments)]
        )

    def pieces(key: str) -> int:
        etag = s3.head_object(Bucket=config.container, Key=key)["ETag"].strip('"')
        return int(etag.partition("-")[2] or 1)  # a multipart ETag ends in -<parts>

    try:
        yield Case("s3", S3Store(config, part_size=S3_PART), config, raw, pieces)
    finally:
        for upload in uploads():
            s3.abort_multipart_upload(
                Bucket=config.container, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        remove_container(conn, config.container)
        remove_container(conn, segments)
        conn.close()


def make_case(kind: str, request: pytest.FixtureRequest) -> Iterator[Case]:
    if kind == "directory":
        return directory_case()
    cluster: SwiftCluster = request.getfixturevalue("swift")
    return swift_case(cluster) if kind == "swift" else s3_case(cluster)


@pytest.fixture(params=KINDS)
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    yield from make_case(request.param, request)


@pytest.fixture(params=["swift", "s3"])
def remote_case(request: pytest.FixtureRequest) -> Iterator[Case]:
    yield from make_case(request.param, request)


# ------------------------------------------------------------------ the contract
@pytest.mark.parametrize("size", [0, SMALL, MULTI], ids=["empty", "small", "multi"])
def test_put_get_roundtrip(case: Case, size: int) -> None:
    assert case.store.put("p/obj", chunks_of(size)) == size
    assert digest_of(case.store.get("p/obj")) == digest_of(chunks_of(size))
    assert case.store.size("p/obj") == size
    if size == MULTI and case.kind != "directory":
        assert case.pieces("p/obj") > 1, "a large object must be uploaded in pieces"


def test_replace_keeps_only_the_new_object(case: Case) -> None:
    key = "odd name/ü%20+x?"  # characters that URL quoting must get right
    case.store.put(key, chunks_of(MULTI, seed=1))
    case.store.put(key, chunks_of(SMALL, seed=2))
    assert digest_of(case.store.get(key)) == digest_of(chunks_of(SMALL, seed=2))
    left = case.raw()
    if case.kind == "s3":
        # Swift 2.30's s3api keeps the parts of an overwritten multipart object in
        # <bucket>+segments (a backend leak AWS S3 does not have; no S3 call reaches them)
        left = [n for n in left if "+segments/" not in n]
    assert left == [key], "the old object's segments or parts must be gone"


def test_list_with_prefix_is_sorted(case: Case) -> None:
    for key in ["b/2", "a/1", "b/10", "b/1", "bz", "c"]:
        case.store.put(key, [key.encode()])
    assert case.store.list() == ["a/1", "b/1", "b/10", "b/2", "bz", "c"]
    assert case.store.list("b/") == ["b/1", "b/10", "b/2"]
    assert case.store.list("b") == ["b/1", "b/10", "b/2", "bz"]
    assert case.store.list("nothing/") == []


def test_exists_size_and_idempotent_delete(case: Case) -> None:
    for size in (SMALL, MULTI):
        assert not case.store.exists("d/obj")
        case.store.put("d/obj", chunks_of(size))
        assert case.store.exists("d/obj")
        assert case.store.size("d/obj") == size
        case.store.delete("d/obj")
        assert not case.store.exists("d/obj")
        case.store.delete("d/obj")  # a second delete is not an error
        assert case.raw() == [], "a deleted object must leave no segments or parts"


def test_missing_key_is_storage_not_found(case: Case) -> None:
    assert case.store.list() == []  # nothing stored yet: no container, bucket or directory
    for call in (case.store.get, case.store.size):
        with pytest.raises(StorageNotFound, match="'no/such'"):
            call("no/such")
    case.store.put("other", [b"x"])
    with pytest.raises(StorageNotFound, match="'no/such'"):
        case.store.get("no/such")
    case.store.delete("no/such")


@pytest.mark.parametrize("replacing", [False, True], ids=["new", "replacing"])
def test_failed_put_leaves_no_object_and_no_parts(case: Case, replacing: bool) -> None:
    if replacing:
        case.store.put("f", [b"the old object"])
    failure = ValueError("the backup tool died")

    def broken() -> Iterator[bytes]:
        yield from chunks_of(MULTI)  # past several segments or parts
        raise failure

    with pytest.raises(ValueError) as raised:
        case.store.put("f", broken())
    assert raised.value is failure, "the source's own exception must reach the caller"
    if replacing:
        assert b"".join(case.store.get("f")) == b"the old object"
        assert case.raw() == ["f"]
    else:
        assert not case.store.exists("f")
        assert case.raw() == []


BAD_KEYS = ["", "/abs", "a//b", "a/../b", "..", "a/.", "trailing/", "nul\x00", "x" * 1025]


def test_bad_keys_are_rejected_and_change_nothing(case: Case) -> None:
    for key in BAD_KEYS:
        with pytest.raises(BadRequest, match="object key"):
            case.store.put(key, [b"data"])
        for call in (case.store.get, case.store.size, case.store.exists, case.store.delete):
            with pytest.raises(BadRequest):
                call(key)
    assert case.raw() == []


def test_wrong_credentials_give_a_clear_error_without_the_secret(remote_case: Case) -> None:
    wrong = "wrong-" + uuid.uuid4().hex
    store = open_store(remote_case.config.model_copy(update={"key": wrong}))
    for call in (lambda: store.put("k", [b"data"]), store.list, lambda: store.get("k")):
        with pytest.raises(StorageError, match="check the store's") as raised:
            call()
        assert not isinstance(raised.value, StorageNotFound)
        for text in (str(raised.value), str(raised.value.__cause__)):
            assert wrong not in text
    assert remote_case.raw() == []


def test_unreachable_store_is_a_storage_error_naming_it(remote_case: Case) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        location = remote_case.config.location.replace(
            str(urlsplit(remote_case.config.location).port), str(port)
        )
        store = open_store(remote_case.config.model_copy(update={"location": location}))
        with pytest.raises(StorageError, match=f"cannot store 'k'.*{port}") as raised:
            store.put("k", [b"data"])
    assert remote_case.config.key not in str(raised.value)
    assert f"127.0.0.1:{port}" in raised.value.message


def large(size: int) -> Iterator[bytes]:
    """``size`` bytes made on the fly, 1 MiB at a time, each chunk different."""
    block = random.Random(7).randbytes(MiB)
    for i in range(size // MiB):
        yield i.to_bytes(8, "big") + block[8:]


@pytest.mark.parametrize(
    ("kind", "size"), [("directory", 200 * MiB), ("swift", 200 * MiB), ("s3", 40 * MiB)]
)
def test_memory_stays_bounded_for_a_large_object(
    request: pytest.FixtureRequest, kind: str, size: int
) -> None:
    """Peak Python memory while storing and reading back, well below the object's size."""
    cases = make_case(kind, request)
    case = next(cases)
    try:
        if kind == "swift":  # production segment size: segments must stream, not buffer
            case.store = SwiftStore(case.config)
        case.store.put("warm-up", [b"x"])  # clients, buckets, service models: not per object
        tracemalloc.start()
        try:
            assert case.store.put("big", large(size)) == size
            put_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            before_get = tracemalloc.get_traced_memory()[0]
            assert digest_of(case.store.get("big")) == digest_of(large(size))
            get_peak = tracemalloc.get_traced_memory()[1] - before_get
        finally:
            tracemalloc.stop()
        print(
            f"{kind}: {size / MiB:.0f} MiB, put peak {put_peak / MiB:.1f} MiB, "
            f"get peak {get_peak / MiB:.1f} MiB"
        )
        bound = 2 * S3_PART if kind == "s3" else 16 * MiB  # one part; no 64 MiB segment
        assert put_peak < bound
        assert get_peak < 16 * MiB
    finally:
        with contextlib.suppress(StopIteration):
            next(cases)


# ------------------------------------------------------------------ one store's specifics
def test_open_store_picks_the_implementation_and_rejects_bad_configs() -> None:
    assert isinstance(open_store(StoreConfig(location="/srv/backups")), DirectoryStore)
    swift_cfg = StoreConfig(
        kind="swift", location="http://127.0.0.1:1/auth/v1.0", user="a:b", key="k"
    )
    assert isinstance(open_store(swift_cfg), SwiftStore)
    s3_cfg = StoreConfig(kind="s3", location="http://127.0.0.1:1", user="a", key="k")
    assert isinstance(open_store(s3_cfg), S3Store)
    with pytest.raises(BadRequest, match="absolute path"):
        open_store(StoreConfig(location="relative/dir"))
    with pytest.raises(BadRequest, match="user and a key"):
        open_store(swift_cfg.model_copy(update={"key": None}))
    with pytest.raises(BadRequest, match="http"):
        open_store(s3_cfg.model_copy(update={"location": "ftp://x"}))


def test_directory_store_modes_temp_files_and_key_collisions() -> None:
    cases = directory_case()
    case = next(cases)
    try:
        store, root = case.store, Path(case.config.location)
        store.put("a/b/c", [b"secret"])
        assert stat.S_IMODE((root / "a" / "b" / "c").stat().st_mode) == 0o600
        for directory in (root, root / "a", root / "a" / "b"):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        (root / "a" / f"{TEMP_PREFIX}left-by-a-crash").write_bytes(b"partial")
        assert store.list() == ["a/b/c"]
        with pytest.raises(BadRequest, match="reserved prefix"):
            store.put(f"a/{TEMP_PREFIX}x", [b"x"])
        with pytest.raises(StorageError, match="'a/b/c' is an object"):
            store.put("a/b/c/d", [b"x"])
        with pytest.raises(StorageError, match="prefix of other keys"):
            store.put("a/b", [b"x"])
        assert store.list() == ["a/b/c"]
        assert b"".join(store.get("a/b/c")) == b"secret"
        store.delete("a/b/c")
        assert sorted(p.name for p in root.iterdir()) == ["a"]  # only the crash leftover's dir
    finally:
        with contextlib.suppress(StopIteration):
            next(cases)


# ------------------------------------------------------------------ purge after a crash
#: run by ``crashed_puts`` in a child process: starts a put of each key in its own thread,
#: each fed ``size`` bytes and then stalled forever; prints "ready" once every put has
#: consumed all its bytes (so their temporary files, segments or parts exist), then waits
#: to be killed. Reads its job (store config included) from stdin.
CRASHING_PUT = r"""
import json, os, sys, threading

job = json.loads(sys.stdin.readline())
from coffer.storage import StoreConfig
config = StoreConfig.model_validate(job["config"])
if job["kind"] == "directory":
    from coffer.storage.filesystem import DirectoryStore
    store = DirectoryStore.from_config(config)
elif job["kind"] == "swift":
    from coffer.storage.swift import SwiftStore
    store = SwiftStore(config, segment_size=job["segment"], inline_limit=job["inline"])
else:
    from coffer.storage.s3 import S3Store
    store = S3Store(config, part_size=job["part"])

def stalled(size, fed):
    while size > 0:
        n = min(1 << 20, size)
        yield os.urandom(n)
        size -= n
    fed.set()
    threading.Event().wait()  # until the process is killed

fed = []
for key in job["keys"]:
    fed.append(threading.Event())
    feed = stalled(job["size"], fed[-1])
    threading.Thread(target=store.put, args=(key, feed), daemon=True).start()
for event in fed:
    event.wait()
print("ready", flush=True)
threading.Event().wait()
"""

#: past two Swift segments and two S3 parts: both are stored when the put stalls
CRASH_SIZE = 11 * MiB


def crashed_puts(case: Case, keys: list[str]) -> None:
    """Start puts of ``keys`` in a child process and SIGKILL it mid-upload, the way an
    agent dies: whatever the puts had stored by then is left behind."""
    job = {
        "kind": case.kind,
        "config": case.config.model_dump(),
        "keys": keys,
        "size": CRASH_SIZE,
        "segment": SWIFT_SEGMENT,
        "inline": SWIFT_INLINE,
        "part": S3_PART,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_PUT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(job) + "\n")
        child.stdin.close()
        assert child.stdout.readline().strip() == "ready", "the crashing puts never got going"
    finally:
        child.kill()  # SIGKILL: no cleanup code runs
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def backend_names(case: Case, prefix: str) -> list[str]:
    """The names in ``case.raw()`` of things stored for keys under ``prefix``: objects,
    temporary files, segments (``<key>/<upload>/<n>``, in either segments container) and
    unfinished uploads (``upload:<key>``)."""
    marks = (f"{case.config.container}_segments/", f"{case.config.container}+segments/")
    return [
        name
        for name in case.raw()
        if any(name.startswith(mark + prefix) for mark in (*marks, "upload:", ""))
    ]


def test_purge_removes_objects_and_what_killed_puts_left(case: Case) -> None:
    objects = {"p/b1/data": MULTI, "p/b1/sub/meta": SMALL}
    outside = {"p/b10/data": MULTI, "p/other/data": SMALL, "q": SMALL}
    for key, size in {**objects, **outside}.items():
        case.store.put(key, chunks_of(size, seed=len(key)))
    stored = case.raw()
    crashed_puts(case, ["p/b1/data", "p/b1/sub/deep/new", "p/b10/crashed"])

    under = backend_names(case, "p/b1/")
    # what purge itself removes besides the objects (s3api drops the parts of an upload
    # when the upload is aborted)
    leftovers = [n for n in under if n not in objects and "+segments/" not in n]
    if case.kind == "directory":
        assert len([n for n in leftovers if TEMP_PREFIX in n]) == 2, under
    elif case.kind == "swift":  # the object's own 4 segments, and the crashed puts' ones
        assert len(leftovers) >= 4 + 2 * 2, under
    else:
        assert sorted(leftovers) == ["upload:p/b1/data", "upload:p/b1/sub/deep/new"], under
    assert case.store.list("p/b1/") == sorted(objects), "leftovers are never listed"
    kept = [n for n in case.raw() if n not in under]
    assert set(kept) - set(stored), "the crash outside the prefix left something to keep"

    assert case.store.purge("p/b1/") == len(objects) + len(leftovers)

    assert backend_names(case, "p/b1/") == []
    assert case.raw() == kept, "nothing outside the prefix is touched"
    for key, size in outside.items():
        assert digest_of(case.store.get(key)) == digest_of(chunks_of(size, seed=len(key)))
    assert case.store.purge("p/b1/") == 0, "a second purge finds nothing"
    if case.kind == "directory":
        assert not (Path(case.config.location) / "p" / "b1").exists(), "empty dirs go too"


def test_purge_of_a_prefix_with_nothing_under_it(case: Case) -> None:
    assert case.store.purge("nothing/here/") == 0  # no container, bucket or directory yet
    case.store.put("a/b", [b"x"])
    assert case.store.purge("nothing/") == 0
    assert case.store.purge("a/b/") == 0  # "a/b" is an object, not under "a/b/"
    assert case.store.list() == ["a/b"]


BAD_PREFIXES = ["", "/", "p", "p/b1", "/p/", "p//", "p/../", "../", "./", "nul\x00/"]


def test_bad_prefixes_are_rejected_and_change_nothing(case: Case) -> None:
    case.store.put("p/b1/data", [b"data"])
    before = case.raw()
    for prefix in BAD_PREFIXES:
        with pytest.raises(BadRequest, match="object prefix"):
            case.store.purge(prefix)
    assert case.raw() == before


def test_purge_keeps_the_segments_of_the_object_named_like_the_prefix(
    remote_case: Case,
) -> None:
    """Segments of ``p/b1`` are named ``p/b1/<upload>/<n>``: a purge of ``p/b1/`` must
    not take them for leftovers of a key under the prefix."""
    store = remote_case.store
    store.put("p/b1", chunks_of(MULTI, seed=3))
    store.put("p/b1/data", chunks_of(MULTI, seed=4))
    assert store.purge("p/b1/") >= 1
    assert store.list() == ["p/b1"]
    assert digest_of(store.get("p/b1")) == digest_of(chunks_of(MULTI, seed=3))
    if remote_case.kind == "swift":
        assert remote_case.pieces("p/b1") > 1
