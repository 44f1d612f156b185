"""The shipped change log in a (real, directory) object store: parts of a growing file
join into its prefix, a whole file replaces its parts, objects cannot be swapped or
moved undetected, gaps are refused, pruning keeps what later files need."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coffer.errors import IntegrityError, StorageNotFound
from coffer.storage.filesystem import DirectoryStore
from coffer.storage.logstore import LogStore
from coffer.storage.sealed import new_data_key

INSTANCE = "3f0c2a4e-1111-4222-8333-944445555666"


@pytest.fixture
def logs(tmp_path: Path) -> LogStore:
    return LogStore(
        DirectoryStore(tmp_path / "store"), f"p/{INSTANCE}/logs", new_data_key(), INSTANCE
    )


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _read(logs: LogStore, name: str) -> bytes:
    with logs.open(name) as stream:
        return stream.read()


def test_parts_join_and_a_whole_file_replaces_them(tmp_path: Path, logs: LogStore) -> None:
    data = os.urandom(3 << 20)
    path = _file(tmp_path, "000000010000000000000003", data)
    logs.put_part(path.name, path, 0, 1000)
    logs.put_part(path.name, path, 1000, 2_500_000)
    shipped = logs.inventory()[path.name]
    assert not shipped.complete and shipped.end == 2_500_000
    assert _read(logs, path.name) == data[:2_500_000]
    logs.put_whole(path.name, path, len(data))
    logs.delete_parts(path.name)
    assert logs.inventory()[path.name].complete and not logs.inventory()[path.name].parts
    assert _read(logs, path.name) == data
    assert logs.names() == [path.name]


def test_swapped_or_moved_objects_are_detected(tmp_path: Path, logs: LogStore) -> None:
    one = _file(tmp_path, "mariadb-bin.000001", b"one" * 1000)
    two = _file(tmp_path, "mariadb-bin.000002", b"two" * 1000)
    logs.put_whole(one.name, one, 3000)
    logs.put_whole(two.name, two, 3000)
    root = tmp_path / "store" / "p" / INSTANCE / "logs"
    first, second = root / one.name, root / two.name
    saved = first.read_bytes()
    first.write_bytes(second.read_bytes())
    with pytest.raises(IntegrityError):
        _read(logs, one.name)
    first.write_bytes(saved)
    assert _read(logs, one.name) == b"one" * 1000
    # a part re-labelled with other offsets fails too
    three = _file(tmp_path, "mariadb-bin.000003", b"x" * 100)
    logs.put_part(three.name, three, 0, 50)
    part = root / f"{three.name}.part" / f"{0:012d}-{50:012d}"
    part.rename(part.with_name(f"{0:012d}-{40:012d}"))
    with pytest.raises(IntegrityError):
        _read(logs, three.name)


def test_a_gap_between_parts_is_refused(tmp_path: Path, logs: LogStore) -> None:
    path = _file(tmp_path, "mariadb-bin.000001", b"abcdef" * 100)
    logs.put_part(path.name, path, 0, 100)
    logs.put_part(path.name, path, 200, 300)
    with pytest.raises(IntegrityError, match="gap"):
        _read(logs, path.name)
    with pytest.raises(StorageNotFound):
        _read(logs, "mariadb-bin.000009")


def test_prune_before_keeps_later_files(tmp_path: Path, logs: LogStore) -> None:
    for i in range(1, 5):
        path = _file(tmp_path, f"mariadb-bin.00000{i}", bytes([i]) * 10)
        if i < 4:
            logs.put_whole(path.name, path, 10)
        else:
            logs.put_part(path.name, path, 0, 5)
    assert logs.prune_before("mariadb-bin.000003") == 2
    assert logs.names() == ["mariadb-bin.000003", "mariadb-bin.000004"]
    assert _read(logs, "mariadb-bin.000004") == bytes([4]) * 5
    with pytest.raises(ValueError):
        logs.put_whole("../escape", tmp_path / "mariadb-bin.000001", 1)
