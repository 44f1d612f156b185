"""PostgreSQL physical backups and restores against real PostgreSQL 15 servers.

One source instance gets data (several databases and schemas, non-ASCII text, binary and
TOAST-sized values, an unlogged table), a full backup, more writes, an incremental, more
writes, a second incremental; each backup goes to a plain file and the source's contents
are recorded right after it (no writes run meanwhile). Restores go into new instances
(one of them run by another OS account, Debian's ``postgres``) and must equal those
records exactly. Instances run from a world-traversable ``/tmp/cfpgb-*`` root, on ports
18000-18299; every server is stopped and the root removed by finalizers.
"""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import stat
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from psycopg import sql

from coffer.contracts.engine import DatabaseSpec, UserSpec
from coffer.engines.base import BackupOutcome, Engine, InstancePaths
from coffer.engines.postgresql import build_engine
from coffer.engines.postgresql.backup import (
    archived_wal_files,
    format_lsn,
    parse_lsn,
    segment_name,
)
from coffer.engines.postgresql.config import ARCHIVE_ENABLED, archive_command, restore_command
from coffer.engines.postgresql.connection import connect
from coffer.errors import EngineError, IntegrityError
from tests.integration.test_postgresql_engine import ENGINE_USER, POSTGRES, Server
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks(
    "postgresql_backup", POSTGRES, "PostgreSQL 15 is not installed"
)

APP_PASSWORD = "app-Pässword'42"
LATE_PASSWORD = "late-pw-7"
#: an OS account other than the source's, to restore into
OTHER_OS_USER = "postgres"
TABLES_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence = 'p'
  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
ORDER BY 1, 2
"""

Snapshot = dict[str, list[tuple[Any, ...]]]


free_port = engine_harness.PortRange(18000, 18299).take


class Instance(Server):
    """The engine test's ``Server``, on this module's ports, run as ``os_user``."""

    def __init__(self, engine: Engine, root: Path, os_user: str = ENGINE_USER) -> None:
        super().__init__(engine, root, port=free_port())
        self.paths = InstancePaths(root=root, os_user=os_user)

    def sql(self, statement: str, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        with connect(self.paths, self.spec, dbname=dbname) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []


@dataclass
class Backup:
    file: Path
    outcome: BackupOutcome
    snapshot: Snapshot


@dataclass
class Chain:
    full: Backup
    inc1: Backup
    inc2: Backup


class RaisingStream(io.RawIOBase):
    """A backup stream that raises ``IntegrityError`` once ``limit`` bytes were read."""

    def __init__(self, path: Path, limit: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            raise IntegrityError("backup stream failed authentication (tampered or truncated)")
        view = memoryview(buffer)[: self._left]
        count = self._file.readinto(view)
        self._left -= count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


def snapshot(server: Instance) -> Snapshot:
    """Every row of every permanent user table of every non-template database."""
    result: Snapshot = {}
    databases = server.sql(
        "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn"
    )
    for (dbname,) in databases:
        with connect(server.paths, server.spec, dbname=dbname) as conn:
            for schema, table in conn.execute(TABLES_SQL).fetchall():
                name = sql.Identifier(schema, table)
                query = sql.SQL('SELECT * FROM {} AS t ORDER BY t::text COLLATE "C"').format(name)
                result[f"{dbname}.{schema}.{table}"] = conn.execute(query).fetchall()
    return result


def take_backup(server: Instance, target: Path, parent: BackupOutcome | None) -> Backup:
    with open(target, "wb") as sink:
        outcome = server.engine.backups.backup(
            server.paths, server.spec, sink, parent.positions if parent else None
        )
    return Backup(file=target, outcome=outcome, snapshot=snapshot(server))


def root_entries(root: Path) -> set[str]:
    """What is in an instance root, but the lock file ``prepare`` and restores share."""
    if not root.exists():
        return set()
    return {entry for entry in os.listdir(root) if entry != ".coffer-prepare.lock"}


workspace = engine_harness.workspace_fixture("cfpgb-")
engine = engine_harness.engine_fixture(build_engine, ENGINE_USER)


#: factory of (not yet prepared) instances; every one started is stopped at the end
instances = engine_harness.fleet_fixture("instances", Instance, lambda s: [s.stop])


@pytest.fixture(scope="module")
def restore(instances: Callable[..., Instance]) -> Callable[..., Instance]:
    """Restore backup files into a new instance the way the agent does, and start it."""

    def run(name: str, files: list[Path], os_user: str = ENGINE_USER) -> Instance:
        target = instances(name, os_user)
        streams = [open(path, "rb") for path in files]  # noqa: SIM115 - closed below
        try:
            target.engine.backups.restore(target.paths, target.spec, streams)
        finally:
            for stream in streams:
                stream.close()
        target.engine.lifecycle.configure(target.paths, target.spec)
        target.engine.lifecycle.configure(target.paths, target.spec)  # twice: keeps recovery
        assert "restore_command" in (target.paths.data_dir / "coffer.conf").read_text()
        target.start()
        target.engine.lifecycle.bootstrap(target.paths, target.spec)
        return target

    return run


@pytest.fixture(scope="module")
def source(instances: Callable[..., Instance]) -> Instance:
    server = instances("source")
    server.prepare_and_configure()
    server.start()
    server.engine.lifecycle.bootstrap(server.paths, server.spec)
    server.admin.create_databases([DatabaseSpec(name="shop"), DatabaseSpec(name="ledger")])
    server.admin.create_users(
        [UserSpec(name="app", password=APP_PASSWORD, databases=("shop", "ledger"))]
    )
    with server.tcp("app", APP_PASSWORD, "shop") as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, label text, photo bytea)")
        conn.execute(
            "INSERT INTO items VALUES (1, 'Größe/大きい/🐘', %s), (2, 'plain', %s),"
            " (3, repeat('long-ü', 40000), %s)",
            (bytes(range(256)), b"\x00\xff\x00", os.urandom(200_000)),
        )
        conn.execute("CREATE UNLOGGED TABLE cache (k text)")
        conn.execute("INSERT INTO cache VALUES ('volatile')")
    with server.tcp("app", APP_PASSWORD, "ledger") as conn:
        conn.execute("CREATE SCHEMA audit")
        conn.execute("CREATE TABLE entries (id bigserial PRIMARY KEY, amount numeric, note text)")
        conn.execute(
            "INSERT INTO entries (amount, note) SELECT g * 1.5, 'nöte ' || g"
            " FROM generate_series(1, 2000) g"
        )
        conn.execute("CREATE TABLE audit.log (at int, what text)")
        conn.execute("INSERT INTO audit.log VALUES (1, 'créé')")
    return server


@pytest.fixture(scope="module")
def chain(source: Instance, workspace: Path) -> Chain:
    """full → writes → incremental → writes → incremental, with snapshots after each."""
    full = take_backup(source, workspace / "full.tar", None)
    source.admin.create_databases([DatabaseSpec(name="extra")])
    source.admin.create_users(
        [UserSpec(name="late_user", password=LATE_PASSWORD, databases=("extra",))]
    )
    with source.tcp("app", APP_PASSWORD, "shop") as conn:
        conn.execute("INSERT INTO items VALUES (4, 'après', '\\x0102')")
        conn.execute("UPDATE items SET label = 'changed ✓' WHERE id = 2")
    with source.tcp("app", APP_PASSWORD, "ledger") as conn:
        conn.execute("DELETE FROM entries WHERE id % 3 = 0")
        conn.execute("CREATE TABLE late (v text)")
        conn.execute("INSERT INTO late VALUES ('in inc1')")
    source.sql("CREATE TABLE public.notes (body text)", dbname="extra")
    source.sql("INSERT INTO notes VALUES ('extra ❄')", dbname="extra")
    inc1 = take_backup(source, workspace / "inc1.tar", full.outcome)
    with source.tcp("app", APP_PASSWORD, "ledger") as conn:
        conn.execute("DROP TABLE late")
        conn.execute("INSERT INTO audit.log SELECT g, 'bulk' FROM generate_series(2, 500) g")
    source.sql("INSERT INTO notes VALUES ('second')", dbname="extra")
    inc2 = take_backup(source, workspace / "inc2.tar", inc1.outcome)
    return Chain(full=full, inc1=inc1, inc2=inc2)


def test_wal_positions_and_names() -> None:
    assert parse_lsn("0/3000100") == 0x3000100
    assert format_lsn(parse_lsn("1A/FF000028")) == "1A/FF000028"
    assert segment_name(1, 0x3000100 // (16 << 20), 16 << 20) == "000000010000000000000003"
    assert segment_name(2, 0x1A_FF000028 // (16 << 20), 16 << 20) == "000000020000001A000000FF"
    for bad in ("", "0/", "x/1", "0/3000100 ", "123456789/0"):
        with pytest.raises(ValueError):
            parse_lsn(bad)
    for unsafe in (Path("/srv/has space"), Path("/srv/quo'te"), Path("relative")):
        with pytest.raises(EngineError, match="letters, digits"):
            archive_command(unsafe)
        with pytest.raises(EngineError, match="letters, digits"):
            restore_command(unsafe)


def test_archive_command_never_replaces_an_archived_file(workspace: Path) -> None:
    area = workspace / "archive-command"
    (area / "pg_wal").mkdir(parents=True)
    (area / "archive").mkdir()
    name = "000000010000000000000007"
    command = archive_command(area / "archive").replace("%p", f"pg_wal/{name}")
    command = command.replace("%f", name)

    def archive(content: bytes) -> int:
        (area / "pg_wal" / name).write_bytes(content)
        return subprocess.run(["sh", "-c", command], cwd=area, check=False).returncode

    assert archive(b"unwanted") == 0  # before any backup: let go, not archived
    assert os.listdir(area / "archive") == []
    (area / "archive" / ARCHIVE_ENABLED).touch()
    assert archive(b"first") == 0
    assert archive(b"first") == 0  # archived again after a crash: identical, accepted
    assert archive(b"other") != 0  # a different file of that name: refused
    assert sorted(os.listdir(area / "archive")) == sorted([ARCHIVE_ENABLED, name])
    assert (area / "archive" / name).read_bytes() == b"first"


def test_outcomes_record_positions_and_counts(source: Instance, chain: Chain) -> None:
    full, inc1, inc2 = chain.full.outcome, chain.inc1.outcome, chain.inc2.outcome
    identity = source.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0]
    for outcome in (full, inc1, inc2):
        assert outcome.positions["timeline"] == "1"
        assert outcome.positions["system_identifier"] == identity
        assert len(outcome.positions["wal_file"]) == 24
    assert parse_lsn(full.positions["start_lsn"]) <= parse_lsn(full.positions["lsn"])
    assert inc1.positions["start_lsn"] == full.positions["lsn"]
    assert inc2.positions["start_lsn"] == inc1.positions["lsn"]
    assert parse_lsn(inc2.positions["lsn"]) > parse_lsn(inc1.positions["lsn"])
    assert inc1.positions["wal_file"] < inc2.positions["wal_file"]
    for backup in (chain.full, chain.inc1, chain.inc2):
        # counts are rows per permanent table, exactly what the snapshot holds
        rows = {name: len(table) for name, table in backup.snapshot.items()}
        assert backup.outcome.counts == rows
    assert full.counts["shop.public.items"] == 3
    assert "shop.public.cache" not in full.counts  # unlogged: not in physical backups
    assert inc1.counts["extra.public.notes"] == 1 and "extra.public.notes" not in full.counts
    assert "ledger.public.late" in inc1.counts and "ledger.public.late" not in inc2.counts
    assert source.engine.backups.counts(source.paths, source.spec) == inc2.counts
    # each backup prunes what no incremental on a surviving backup needs, and the archive
    # holds nothing but complete files
    archived = [path.name for path in archived_wal_files(source.paths)]
    # (pruned at each incremental's parent: a retry of inc2 could still be taken on inc1)
    assert full.positions["wal_file"] not in archived and inc2.positions["wal_file"] in archived
    assert all(not name.startswith(".") for name in archived)


def test_restore_full_into_another_account(
    source: Instance, chain: Chain, restore: Callable[..., Instance]
) -> None:
    assert any(entry.pw_name == OTHER_OS_USER for entry in pwd.getpwall()), (
        f"no {OTHER_OS_USER!r} OS account (Debian's postgresql-15 creates it; run scripts/setup)"
    )
    restored = restore("r-full", [chain.full.file], OTHER_OS_USER)
    assert snapshot(restored) == chain.full.snapshot
    counts = restored.engine.backups.counts(restored.paths, restored.spec)
    assert counts == chain.full.outcome.counts
    assert restored.sql("SELECT count(*) FROM cache", dbname="shop") == [(0,)]
    assert "no corruption" in restored.engine.backups.check(restored.paths, restored.spec)

    # owned by the new account, recovery over and cleaned up, on a timeline of its own
    uid = pwd.getpwnam(OTHER_OS_USER).pw_uid
    for directory in (restored.paths.data_dir, restored.paths.run_dir):
        info = directory.stat()
        assert info.st_uid == uid and stat.S_IMODE(info.st_mode) == 0o700
    assert {p.stat().st_uid for p in restored.paths.data_dir.rglob("*")} == {uid}
    assert root_entries(restored.paths.root) == {"data", "run", "wal_archive", "engine.log"}
    assert not (restored.paths.data_dir / "recovery.signal").exists()
    settings = (restored.paths.data_dir / "coffer.conf").read_text()
    assert "restore_command" not in settings and "hot_standby" not in settings
    assert str(restored.paths.root / "wal_archive") in settings
    assert restored.sql("SELECT pg_is_in_recovery()") == [(False,)]
    assert restored.sql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)") == [
        ("00000002",)
    ]

    # users from before the backup log in; the instance is managed by its own admin
    with restored.tcp("app", APP_PASSWORD, "shop") as conn:
        assert conn.execute("SELECT label FROM items WHERE id = 1").fetchone() == (
            "Größe/大きい/🐘",
        )
    restored.admin.create_databases([DatabaseSpec(name="after")])
    restored.admin.create_users([UserSpec(name="newbie", password="n-pw", databases=("after",))])
    with restored.tcp("newbie", "n-pw", "after") as conn:
        conn.execute("CREATE TABLE t (x int)")

    # once backed up itself, it archives into its own volume, never into the source's
    assert archived_wal_files(restored.paths) == []
    restored.engine.backups.backup(restored.paths, restored.spec, io.BytesIO())
    restored.sql("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 30
    while not any(p.name.startswith("00000002") for p in archived_wal_files(restored.paths)):
        assert time.monotonic() < deadline, "the restored instance archived nothing"
        time.sleep(0.1)
    assert not [p for p in archived_wal_files(source.paths) if p.name.startswith("00000002")]


def test_restore_full_and_incrementals(chain: Chain, restore: Callable[..., Instance]) -> None:
    first = restore("r-inc1", [chain.full.file, chain.inc1.file])
    assert snapshot(first) == chain.inc1.snapshot
    assert first.engine.backups.counts(first.paths, first.spec) == chain.inc1.outcome.counts
    with first.tcp("late_user", LATE_PASSWORD, "extra") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("late_user",)
    first.stop()

    both = restore("r-inc2", [chain.full.file, chain.inc1.file, chain.inc2.file])
    assert snapshot(both) == chain.inc2.snapshot
    assert both.engine.backups.counts(both.paths, both.spec) == chain.inc2.outcome.counts
    assert "no corruption" in both.engine.backups.check(both.paths, both.spec)
    with both.tcp("app", APP_PASSWORD, "ledger") as conn:
        assert conn.execute("SELECT count(*) FROM audit.log").fetchone() == (500,)
    both.admin.create_users([UserSpec(name="fresh", password="f-pw", databases=("ledger",))])
    both.tcp("fresh", "f-pw", "ledger").close()
    assert not (both.paths.root / "restore_wal").exists()


def test_incrementals_refuse_unusable_parents(source: Instance, chain: Chain) -> None:
    good = chain.inc2.outcome.positions
    cases: list[tuple[dict[str, str], str]] = [
        ({}, "not those of a PostgreSQL backup"),
        ({"to_lsn": "1234", "gtid": "0-1-5"}, "not those of a PostgreSQL backup"),
        ({**good, "lsn": "not-an-lsn"}, "not those of a PostgreSQL backup"),
        ({**good, "system_identifier": "12345"}, "another database cluster"),
        ({**good, "timeline": "7"}, "timeline"),
        ({**good, "lsn": "FF/0"}, "beyond this instance's WAL"),
    ]
    for parent, message in cases:
        sink = io.BytesIO()
        with pytest.raises(EngineError, match=message) as raised:
            source.engine.backups.backup(source.paths, source.spec, sink, parent)
        assert "take a full backup" in raised.value.message
        assert sink.getvalue() == b""

    # an incremental on an older backup: its WAL was pruned when later backups completed
    with pytest.raises(EngineError, match=r"no longer in the WAL archive.*take a full backup"):
        source.engine.backups.backup(
            source.paths, source.spec, io.BytesIO(), chain.full.outcome.positions
        )


def test_failed_restores_leave_nothing(
    chain: Chain, instances: Callable[..., Instance], workspace: Path
) -> None:
    garbage = workspace / "garbage.bin"
    garbage.write_bytes(os.urandom(300_000))
    full, inc1, inc2 = chain.full.file, chain.inc1.file, chain.inc2.file
    # each stream: a file, or (file, bytes after which reading raises IntegrityError)
    failures: list[tuple[list[Path | tuple[Path, int]], type[Exception], str]] = [
        ([(full, 3 << 20)], IntegrityError, "tampered"),
        ([full, (inc1, 5 << 20)], IntegrityError, "tampered"),
        ([garbage], EngineError, r"extracting the backup \(tar\) failed \(exit 2\)"),
        ([inc1], EngineError, "not a PostgreSQL full backup"),
        ([full, inc2], EngineError, "gap"),
        ([full, full], EngineError, "not a WAL file"),
        ([], EngineError, "at least the full backup"),
    ]
    for number, (sources, error, message) in enumerate(failures):
        target = instances(f"failed-{number}")
        with contextlib.ExitStack() as stack:
            streams: list[BinaryIO] = [
                stack.enter_context(
                    RaisingStream(*item) if isinstance(item, tuple) else open(item, "rb")  # noqa: SIM115
                )
                for item in sources
            ]
            with pytest.raises(error, match=message):
                target.engine.backups.restore(target.paths, target.spec, streams)
        assert root_entries(target.paths.root) == set(), message

    occupied = instances("occupied")
    occupied.prepare_and_configure()
    before = sorted(p.name for p in occupied.paths.data_dir.iterdir())
    with open(full, "rb") as stream, pytest.raises(EngineError, match="already exists"):
        occupied.engine.backups.restore(occupied.paths, occupied.spec, [stream])
    assert sorted(p.name for p in occupied.paths.data_dir.iterdir()) == before


def test_backup_while_writes_go_on(
    source: Instance, chain: Chain, workspace: Path, restore: Callable[..., Instance]
) -> None:
    source.admin.create_databases([DatabaseSpec(name="busy")])
    source.sql("CREATE TABLE ticks (id int PRIMARY KEY, at timestamptz DEFAULT now())", "busy")
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def insert_forever() -> None:
        try:
            with connect(source.paths, source.spec, dbname="busy") as conn:
                while not stop.is_set():
                    conn.execute("INSERT INTO ticks (id) VALUES (%s)", (len(written) + 1,))
                    written.append(len(written) + 1)
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=insert_forever)
    writer.start()
    try:
        while len(written) < 200:
            time.sleep(0.01)
        full = take_backup(source, workspace / "busy-full.tar", None)
        before_incremental = len(written)
        inc = take_backup(source, workspace / "busy-inc.tar", full.outcome)
        after_incremental = len(written)
    finally:
        stop.set()
        writer.join()
    assert not errors

    restored = restore("r-busy", [full.file, inc.file])
    ids = [row[0] for row in restored.sql("SELECT id FROM ticks ORDER BY id", "busy")]
    assert ids == list(range(1, len(ids) + 1))  # a committed prefix, no holes
    assert before_incremental <= len(ids) <= after_incremental + 1
    assert "no corruption" in restored.engine.backups.check(restored.paths, restored.spec)
    assert snapshot(restored)["ledger.audit.log"] == chain.inc2.snapshot["ledger.audit.log"]


def test_check_reports_damage(chain: Chain, restore: Callable[..., Instance]) -> None:
    damaged = restore("r-damaged", [chain.full.file])
    relation = damaged.sql("SELECT pg_relation_filepath('entries')", "ledger")[0][0]
    damaged.stop()
    with open(damaged.paths.data_dir / relation, "r+b") as heap:
        # the second page's first 16 line pointers: "normal", at an unaligned offset
        heap.seek(8192 + 24)
        heap.write(struct.pack("<I", 8190 | (1 << 15) | (100 << 17)) * 16)
    damaged.start()
    with pytest.raises(EngineError, match=r"pg_amcheck found damage.*entries.*not maximally"):
        damaged.engine.backups.check(damaged.paths, damaged.spec)


def test_backups_of_a_restored_instance_restore(
    chain: Chain, workspace: Path, restore: Callable[..., Instance]
) -> None:
    # a restored instance runs on a new timeline: its own fulls and incrementals work
    second = restore("r-gen2", [chain.full.file])
    second.sql("CREATE TABLE gen2 (v text)", "shop")
    full = take_backup(second, workspace / "gen2-full.tar", None)
    assert full.outcome.positions["timeline"] == "2"
    second.sql("INSERT INTO gen2 VALUES ('after the second full')", "shop")
    inc = take_backup(second, workspace / "gen2-inc.tar", full.outcome)
    second.stop()
    third = restore("r-gen3", [full.file, inc.file])
    assert snapshot(third) == inc.snapshot
    assert third.sql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)") == [
        ("00000003",)
    ]
