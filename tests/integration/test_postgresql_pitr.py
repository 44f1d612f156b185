"""PostgreSQL point-in-time recovery against real PostgreSQL 15 servers.

A source instance gets rows, a full backup, then groups of writes (inserts, updates,
deletes, an aborted transaction) at least 0.6 s apart, with a target time recorded
between groups and the source's contents recorded right after each group; an incremental
backup in the middle; WAL segment switches and a bulk insert that fills more than a
segment, so restores span several segments; the last segment stays partly written.

Its WAL is shipped the way the agent ships it, into a directory: ``PostgresLogArchive``
lists the files, exactly each file's ``ready`` bytes are copied (the segment being
written is shipped in part). A small directory-backed ``LogSource`` (a real
implementation of the seam over local files) gives them to restores into new instances,
which must hold exactly what was committed at the target. Instances run from a
world-traversable ``/tmp/cfpgp-*`` root on ports 23300-23599; every server is stopped and
the root removed by finalizers.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pytest

from coffer.contracts.engine import DatabaseSpec
from coffer.engines.base import Engine, LogFile, LogPosition, Recovery
from coffer.engines.postgresql import build_engine
from coffer.engines.postgresql.backup import parse_lsn
from coffer.engines.postgresql.connection import connect
from coffer.engines.postgresql.walarchive import PostgresLogArchive
from coffer.errors import EngineError
from tests.integration.test_postgresql_backup import (
    Backup,
    Instance,
    Snapshot,
    root_entries,
    snapshot,
    take_backup,
)
from tests.integration.test_postgresql_engine import ENGINE_USER, POSTGRES, Server
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks(
    "postgresql_pitr", POSTGRES, "PostgreSQL 15 is not installed"
)

free_port = engine_harness.PortRange(23300, 23599).take
#: pause before and after each target time: commit timestamps are microseconds apart
GAP_S = 0.6
SEGMENT_BYTES = 16 << 20
SHIP_DEADLINE_S = 60.0

archive = PostgresLogArchive()


class PitrInstance(Instance):
    """The backup tests' ``Instance``, on this module's ports."""

    def __init__(self, engine: Engine, root: Path) -> None:
        Server.__init__(self, engine, root, port=free_port())


class DirectoryLogSource:
    """The ``LogSource`` seam over a directory of shipped files (one file per name)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def names(self) -> list[str]:
        return sorted(os.listdir(self.directory))

    def open(self, name: str) -> BinaryIO:
        return open(self.directory / name, "rb")  # the caller's `with` closes it


def lsn_of(position: LogPosition) -> int:
    segno = int(position.name[8:16], 16) * (0x100000000 // SEGMENT_BYTES)
    return (segno + int(position.name[16:], 16)) * SEGMENT_BYTES + position.offset


def ship(source: Instance, since: Mapping[str, str], into: Path) -> list[LogFile]:
    """One shipping round: exactly each listed file's ``ready`` bytes into ``into``."""
    files = archive.files(source.paths, source.spec, since)
    for file in files:
        with open(file.path, "rb") as log:
            data = log.read(file.ready)
        assert len(data) == file.ready, f"{file.name} holds fewer bytes than ready"
        (into / file.name).write_bytes(data)
    return files


def covers(files: list[LogFile], shipped: Path, position: LogPosition) -> bool:
    """Whether everything before ``position`` is shipped (earlier files whole)."""
    for file in files:
        size = (shipped / file.name).stat().st_size
        if file.name == position.name:
            return size >= position.offset
        if not file.complete or size != file.ready:
            return False
    return False


def ship_until(
    source: Instance, since: Mapping[str, str], into: Path, position: LogPosition
) -> list[LogFile]:
    deadline = time.monotonic() + SHIP_DEADLINE_S
    while not covers(files := ship(source, since, into), into, position):
        assert time.monotonic() < deadline, f"{position} never became shippable: {files}"
        time.sleep(0.1)
    return files


@dataclass
class History:
    full: Backup
    inc: Backup
    #: target times between groups of writes, and the source's contents at each
    targets: list[datetime]
    snapshots: list[Snapshot]
    shipped: Path
    last_shipped: LogFile


workspace = engine_harness.workspace_fixture("cfpgp-")
engine = engine_harness.engine_fixture(build_engine, ENGINE_USER)


#: factory of (not yet prepared) instances; every one started is stopped at the end
instances = engine_harness.fleet_fixture("instances", PitrInstance, lambda s: [s.stop])


@pytest.fixture(scope="module")
def source(instances: Callable[[str], PitrInstance]) -> PitrInstance:
    server = instances("source")
    server.prepare_and_configure()
    server.start()
    server.engine.lifecycle.bootstrap(server.paths, server.spec)
    server.admin.create_databases([DatabaseSpec(name="shop")])
    server.sql("CREATE TABLE events (id int PRIMARY KEY, grp int, note text)", "shop")
    server.sql(
        "INSERT INTO events SELECT g, 0, 'first ' || g FROM generate_series(1, 10) g", "shop"
    )
    return server


def write_group(source: Instance, number: int, statements: list[str]) -> Snapshot:
    """Each statement in its own transaction (``ROLLBACK`` ones aborted), then the
    contents."""
    for statement in statements:
        source.sql(statement.format(n=number), "shop")
    return snapshot(source)


def pause_for_target() -> datetime:
    time.sleep(GAP_S)
    target = datetime.now(UTC)
    time.sleep(GAP_S)
    return target


@pytest.fixture(scope="module")
def history(source: PitrInstance, workspace: Path) -> History:
    full = take_backup(source, workspace / "full.tar", None)
    since = full.outcome.positions
    shipped = workspace / "shipped"
    shipped.mkdir()
    targets: list[datetime] = []
    snapshots: list[Snapshot] = []

    def group(statements: list[str]) -> None:
        snapshots.append(write_group(source, len(snapshots) + 1, statements))
        ship(source, since, shipped)
        targets.append(pause_for_target())

    group(
        [
            "INSERT INTO events SELECT g, {n}, 'one ' || g FROM generate_series(11, 20) g",
            "UPDATE events SET note = 'changed in {n}' WHERE id = 2",
            "DELETE FROM events WHERE id = 3",
            "BEGIN; INSERT INTO events VALUES (999, {n}, 'aborted'); ROLLBACK",
        ]
    )
    group(
        [
            "INSERT INTO events SELECT g, {n}, 'two' FROM generate_series(21, 30) g",
            "SELECT pg_switch_wal()",
            "UPDATE events SET grp = {n} WHERE id BETWEEN 11 AND 15",
        ]
    )
    inc = take_backup(source, workspace / "inc.tar", full.outcome)
    group(
        [
            # about 20 MiB of WAL: segments switch inside records, not only by request
            "INSERT INTO events SELECT g, {n}, repeat(md5(g::text), 30)"
            " FROM generate_series(1000, 21000) g",
            "DELETE FROM events WHERE id BETWEEN 1000 AND 1100",
            "SELECT pg_switch_wal()",
            "INSERT INTO events VALUES (31, {n}, 'after a switch')",
        ]
    )
    group(
        [
            "UPDATE events SET note = 'last' WHERE id = 1",
            "INSERT INTO events VALUES (32, {n}, 'the very last')",
        ]
    )
    # the last write is shippable: everything before the position is shipped
    files = ship_until(source, since, shipped, archive.position(source.paths, source.spec))
    return History(
        full=full,
        inc=inc,
        targets=targets,
        snapshots=snapshots,
        shipped=shipped,
        last_shipped=files[-1],
    )


def restore_to(
    instances: Callable[[str], PitrInstance],
    name: str,
    files: list[Path],
    recovery: Recovery,
) -> tuple[PitrInstance, str]:
    """Restore into a new instance as the agent does, start it, bootstrap it; the
    settings its first start used."""
    target = instances(name)
    streams = [open(path, "rb") for path in files]  # noqa: SIM115 - closed below
    try:
        target.engine.backups.restore(target.paths, target.spec, streams, recovery)
    finally:
        for stream in streams:
            stream.close()
    target.engine.lifecycle.configure(target.paths, target.spec)
    settings = (target.paths.data_dir / "coffer.conf").read_text()
    target.start()
    target.engine.lifecycle.bootstrap(target.paths, target.spec)
    return target, settings


def test_the_history_spans_segments_and_ends_in_a_partial_one(history: History) -> None:
    names = sorted(os.listdir(history.shipped))
    full_segment = history.full.outcome.positions["wal_file"]
    assert names[0] <= full_segment
    assert len([name for name in names if name > full_segment]) >= 3
    last = history.last_shipped
    assert not last.complete and 0 < last.ready < SEGMENT_BYTES
    assert (history.shipped / last.name).stat().st_size == last.ready
    assert names[-1] == last.name


@pytest.mark.parametrize(
    ("case", "chain", "target_index"),
    [
        ("full-early", ["full"], 0),
        ("full-late", ["full"], 2),
        ("incremental-late", ["full", "inc"], 2),
    ],
)
def test_restore_to_a_time_between_groups(
    history: History,
    instances: Callable[[str], PitrInstance],
    case: str,
    chain: list[str],
    target_index: int,
) -> None:
    files = [history.full.file if kind == "full" else history.inc.file for kind in chain]
    recovery = Recovery(history.targets[target_index], DirectoryLogSource(history.shipped))
    restored, settings = restore_to(instances, f"r-{case}", files, recovery)
    assert "recovery_target_time" in settings
    assert snapshot(restored) == history.snapshots[target_index]
    # a primary on a timeline of its own, recovery cleaned up, and writable
    assert restored.sql("SELECT pg_is_in_recovery()") == [(False,)]
    assert root_entries(restored.paths.root) == {"data", "run", "wal_archive", "engine.log"}
    restored.sql("INSERT INTO events VALUES (-1, -1, 'after the restore')", "shop")
    assert "no corruption" in restored.engine.backups.check(restored.paths, restored.spec)


def test_a_target_after_the_last_write_restores_everything(
    history: History, instances: Callable[[str], PitrInstance]
) -> None:
    recovery = Recovery(history.targets[-1], DirectoryLogSource(history.shipped))
    restored, settings = restore_to(instances, "r-all", [history.full.file], recovery)
    # no transaction ended after the target: the whole shipped WAL was replayed
    assert "recovery_target_time" not in settings
    assert snapshot(restored) == history.snapshots[-1]
    assert restored.sql("SELECT note FROM events WHERE id = 32", "shop") == [("the very last",)]


def test_position_covers_every_commit_and_becomes_shippable(
    source: PitrInstance, history: History, workspace: Path
) -> None:
    shipped = workspace / "shipped-position"
    shipped.mkdir()
    since = history.full.outcome.positions
    for number in range(3):
        with connect(source.paths, source.spec, dbname="shop") as conn:
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
            assert row is not None
            before = parse_lsn(row[0])
            conn.execute(f"INSERT INTO events VALUES ({-100 - number}, 9, 'position')")
            position = archive.position(source.paths, source.spec)
        # the commit's record begins at `before` or later and lies before the position
        assert lsn_of(position) > before
        files = ship_until(source, since, shipped, position)
        assert position.name in [file.name for file in files]
    # after a switch with nothing written since, the position is the switched
    # segment's end, which is shippable without further writes
    source.sql("SELECT pg_switch_wal()")
    position = archive.position(source.paths, source.spec)
    ship_until(source, since, shipped, position)


def test_a_missing_shipped_segment_is_a_gap(
    history: History, instances: Callable[[str], PitrInstance], workspace: Path
) -> None:
    holey = workspace / "shipped-holey"
    shutil.copytree(history.shipped, holey)
    names = sorted(os.listdir(holey))
    full_segment = history.full.outcome.positions["wal_file"]
    middle = [name for name in names if name > full_segment][1]
    (holey / middle).unlink()
    target = instances("r-gap")
    recovery = Recovery(history.targets[-1], DirectoryLogSource(holey))
    with open(history.full.file, "rb") as stream, pytest.raises(EngineError, match="gap") as raised:
        target.engine.backups.restore(target.paths, target.spec, [stream], recovery)
    assert middle in raised.value.message
    assert root_entries(target.paths.root) == set()


@pytest.mark.parametrize("which", ["complete", "partial"])
def test_bogus_shipped_bytes_are_refused(
    history: History, instances: Callable[[str], PitrInstance], workspace: Path, which: str
) -> None:
    bogus = workspace / f"shipped-bogus-{which}"
    shutil.copytree(history.shipped, bogus)
    full_segment = history.full.outcome.positions["wal_file"]
    names = [name for name in sorted(os.listdir(bogus)) if name > full_segment]
    name = names[0] if which == "complete" else names[-1]
    size = (bogus / name).stat().st_size
    if which == "complete":
        (bogus / name).write_bytes(os.urandom(size))
    else:
        # the prefix of another segment of the cluster (a recycled file read too late)
        (bogus / name).write_bytes((bogus / names[0]).read_bytes()[:size])
    target = instances(f"r-bogus-{which}")
    recovery = Recovery(history.targets[-1], DirectoryLogSource(bogus))
    with open(history.full.file, "rb") as stream, pytest.raises(EngineError, match="not WAL"):
        target.engine.backups.restore(target.paths, target.spec, [stream], recovery)
    assert root_entries(target.paths.root) == set()


def test_a_target_without_a_time_zone_is_refused(
    history: History, instances: Callable[[str], PitrInstance]
) -> None:
    target = instances("r-naive")
    naive = history.targets[0].replace(tzinfo=None)
    recovery = Recovery(naive, DirectoryLogSource(history.shipped))
    with open(history.full.file, "rb") as stream, pytest.raises(EngineError, match="time zone"):
        target.engine.backups.restore(target.paths, target.spec, [stream], recovery)
    assert root_entries(target.paths.root) == set()
