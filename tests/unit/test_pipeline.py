"""Upload (engine pushes, store pulls) and download through a real directory-backed store."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from coffer.errors import EngineError, IntegrityError, StorageError, StorageNotFound
from coffer.storage.pipeline import download, upload
from coffer.storage.sealed import new_data_key

CONTEXT = b"backup-1234"
KEY_NAME = "project-a/backup-1234/data"


class SmallDirectoryStore:
    """A minimal ``ObjectStore`` on a directory: objects appear by rename once complete.

    ``capacity`` (bytes per object) makes a put fail with ``StorageError`` the way a full
    disk would. ``open_reads`` counts ``get`` iterators not yet closed.
    """

    def __init__(self, root: Path, capacity: int | None = None) -> None:
        self.root = root
        self.capacity = capacity
        self.open_reads = 0

    def describe(self) -> str:
        return f"directory {str(self.root)!r}"

    def _path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.part")
        size = 0
        try:
            with open(temp, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if self.capacity is not None and size > self.capacity:
                        raise StorageError(f"{self.describe()} is full storing {key}")
                    out.write(chunk)
            os.replace(temp, path)
        except StorageError:
            temp.unlink(missing_ok=True)
            raise
        except Exception as exc:
            temp.unlink(missing_ok=True)
            raise StorageError(f"{self.describe()} could not store {key}: {exc}") from exc
        return size

    def get(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        if not path.is_file():
            raise StorageNotFound(f"{self.describe()} has no object {key}")
        return self._read(path)

    def _read(self, path: Path) -> Iterator[bytes]:
        self.open_reads += 1
        try:
            with open(path, "rb") as f:
                while chunk := f.read(64 << 10):
                    yield chunk
        finally:
            self.open_reads -= 1

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def list(self, prefix: str = "") -> list[str]:
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix))


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="coffer-pipeline-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def store(root: Path) -> SmallDirectoryStore:
    return SmallDirectoryStore(root)


@pytest.fixture
def threads_before() -> Iterator[set[threading.Thread]]:
    before = set(threading.enumerate())
    yield before
    assert set(threading.enumerate()) == before, "upload left a thread running"


def backup_bytes(size: int, seed: int = 3) -> bytes:
    rng = random.Random(seed)
    block = b"COPY public.accounts (id, owner, balance) FROM stdin;\n1\talice\t100\n" * 8
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(4096) + block
    return bytes(out[:size])


def write(data: bytes) -> Callable[[BinaryIO], None]:
    """A producer writing ``data`` at once."""

    def produce(sink: BinaryIO) -> None:
        sink.write(data)

    return produce


def write_in_uneven_pieces(sink: BinaryIO, data: bytes) -> None:
    sizes, offset = [1, 511, 70_000, 3 << 20, 4096], 0
    while offset < len(data):
        for size in sizes:
            sink.write(data[offset : offset + size])
            offset += size


def test_upload_then_download_round_trips(
    store: SmallDirectoryStore, threads_before: set[threading.Thread]
) -> None:
    data, key = backup_bytes(12 << 20), new_data_key()
    seen: list[int] = []

    def produce(sink: BinaryIO) -> str:
        write_in_uneven_pieces(sink, data)
        return "outcome"

    result, stats = upload(
        store, KEY_NAME, produce, data_key=key, context=CONTEXT, progress=seen.append
    )
    assert result == "outcome"
    assert stats.raw_bytes == len(data)
    assert store.list() == [KEY_NAME]
    assert store.size(KEY_NAME) == stats.stored_bytes < len(data)
    assert stats.sha256 == hashlib.sha256((store.root / KEY_NAME).read_bytes()).hexdigest()
    assert seen and seen[-1] == len(data) and seen == sorted(seen)
    with download(
        store, KEY_NAME, data_key=key, context=CONTEXT, expected_sha256=stats.sha256
    ) as reader:
        assert reader.read() == data
    assert store.open_reads == 0


def test_tar_streams_in_and_out(
    store: SmallDirectoryStore, root: Path, threads_before: set[threading.Thread]
) -> None:
    source = root / "datadir"
    files = {f"base/{i}/relation": backup_bytes(50_000 * i + 1, seed=i) for i in range(1, 6)}
    for name, content in files.items():
        (source / name).parent.mkdir(parents=True)
        (source / name).write_bytes(content)
    key = new_data_key()

    def produce(sink: BinaryIO) -> int:
        with tarfile.open(fileobj=sink, mode="w|") as tar:
            tar.add(source, arcname=".")
        return len(files)

    count, stats = upload(store, "t/data", produce, data_key=key, context=CONTEXT)
    restored: dict[str, bytes] = {}
    with (
        download(store, "t/data", data_key=key, context=CONTEXT, expected_sha256=stats.sha256) as r,
        tarfile.open(fileobj=r, mode="r|") as tar,
    ):
        for member in tar:
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                restored[os.path.normpath(member.name)] = extracted.read()
    assert count == 5 and restored == files


@pytest.mark.parametrize("written", [0, 1000, 20 << 20], ids=["nothing", "little", "plenty"])
def test_producer_failure_leaves_no_object(
    store: SmallDirectoryStore, written: int, threads_before: set[threading.Thread]
) -> None:
    failure = EngineError("pg_basebackup exited with 1: could not read file")

    def produce(sink: BinaryIO) -> None:
        sink.write(backup_bytes(written))
        raise failure

    with pytest.raises(EngineError) as caught:
        upload(store, KEY_NAME, produce, data_key=new_data_key(), context=CONTEXT)
    assert caught.value is failure
    assert not store.exists(KEY_NAME)
    assert [p for p in store.root.rglob("*") if p.is_file()] == [], "no leftover parts"


def test_store_failure_stops_the_producer_with_the_store_error(
    root: Path, threads_before: set[threading.Thread]
) -> None:
    full = SmallDirectoryStore(root, capacity=1 << 20)
    attempted, written = 200 << 20, 0
    write_errors: list[Exception] = []

    def produce(sink: BinaryIO) -> None:
        nonlocal written
        try:
            while written < attempted:
                sink.write(os.urandom(64 << 10))  # incompressible: stored size tracks it
                written += 64 << 10
        except Exception as exc:
            write_errors.append(exc)
            raise EngineError("backup tool stopped: its output failed") from exc

    with pytest.raises(StorageError, match="is full storing"):
        upload(full, KEY_NAME, produce, data_key=new_data_key(), context=CONTEXT)
    assert [type(e) for e in write_errors] == [StorageError], "the producer's write raised"
    assert written < 10 << 20, "the producer stopped soon after the store failed"
    assert not full.exists(KEY_NAME)
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_store_failure_after_the_producer_finished_still_propagates(
    root: Path, threads_before: set[threading.Thread]
) -> None:
    full = SmallDirectoryStore(root, capacity=100)

    with pytest.raises(StorageError, match="is full storing"):
        upload(full, KEY_NAME, write(os.urandom(1000)), data_key=new_data_key(), context=CONTEXT)
    assert not full.exists(KEY_NAME)


def test_bad_data_key_starts_nothing(
    store: SmallDirectoryStore, threads_before: set[threading.Thread]
) -> None:
    calls = []
    with pytest.raises(ValueError, match="data key must be 32 bytes"):
        upload(store, KEY_NAME, calls.append, data_key=b"short", context=CONTEXT)
    assert calls == [] and store.list() == []


def test_download_detects_a_swapped_object(store: SmallDirectoryStore) -> None:
    key = new_data_key()
    _, first = upload(store, "a", write(b"first backup" * 1000), data_key=key, context=CONTEXT)
    upload(store, "b", write(b"second backup" * 1000), data_key=key, context=CONTEXT)
    os.replace(store.root / "b", store.root / "a")  # same key and context: frames still verify
    with (
        download(store, "a", data_key=key, context=CONTEXT, expected_sha256=first.sha256) as r,
        pytest.raises(IntegrityError, match="checksum"),
    ):
        r.read()
    with download(store, "a", data_key=key, context=CONTEXT, expected_sha256=None) as r:
        assert r.read() == b"second backup" * 1000
    assert store.open_reads == 0


def test_download_detects_tampering_and_missing_objects(store: SmallDirectoryStore) -> None:
    key = new_data_key()
    _, stats = upload(store, "a", write(backup_bytes(3 << 20)), data_key=key, context=CONTEXT)
    path = store.root / "a"
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0x40
    path.write_bytes(bytes(damaged))
    with (
        download(store, "a", data_key=key, context=CONTEXT, expected_sha256=None) as r,
        pytest.raises(IntegrityError, match="tampered with or truncated"),
    ):
        shutil.copyfileobj(r, io.BytesIO())
    missing = download(
        store, "missing", data_key=key, context=CONTEXT, expected_sha256=stats.sha256
    )
    with pytest.raises(StorageNotFound), missing:
        pass
    assert store.open_reads == 0


def test_download_closed_early_closes_the_store_read(store: SmallDirectoryStore) -> None:
    key = new_data_key()
    _, stats = upload(store, "a", write(backup_bytes(4 << 20)), data_key=key, context=CONTEXT)
    with download(store, "a", data_key=key, context=CONTEXT, expected_sha256=stats.sha256) as r:
        assert len(r.read(1000)) == 1000
        assert store.open_reads == 1
    assert store.open_reads == 0


class HastyStore(SmallDirectoryStore):
    """A broken store that keeps only the first chunk of a put and reports success."""

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        return super().put(key, [next(iter(chunks))])


def test_a_store_that_stops_reading_early_fails_the_upload(
    root: Path, threads_before: set[threading.Thread]
) -> None:
    hasty = HastyStore(root)
    with pytest.raises(StorageError, match=r"stopped reading .* before its end"):
        upload(
            hasty, KEY_NAME, write(backup_bytes(20 << 20)), data_key=new_data_key(), context=CONTEXT
        )
    assert not hasty.exists(KEY_NAME)
