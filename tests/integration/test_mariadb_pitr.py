"""MariaDB point-in-time recovery against real MariaDB 10.11 servers: the binary log as a
``LogArchive``, restores rolled forward to a target time, and their failures.

One source instance takes a full backup, then groups of writes separated by 2.5 s of
quiet (binary log timestamps are whole seconds), an incremental between two groups, and
binary log rotations inside groups, so restores span several files. The test ships the
log itself the way the agent does: it calls ``MariaDBLogArchive.files()`` after each
group and appends each file's new ``ready`` bytes to a directory (so the file being
written is shipped in pieces, the last one partial); ``ShippedLogs`` is a real
``LogSource`` over that directory. Restores go into new instances (own root, port and
OS account), which are started and bootstrapped as the agent does, and are compared
table by table with snapshots taken at each target. Ports: 23000-23299.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pymysql  # type: ignore[import-untyped,unused-ignore]
import pytest

from coffer.engines.base import BackupOutcome, LogFile, Recovery
from coffer.engines.mariadb import build_engine
from coffer.engines.mariadb.binlog import MariaDBLogArchive
from coffer.engines.mariadb.config import server_id, socket_path
from coffer.errors import EngineError
from tests.integration.test_mariadb_backup import backup, contents, leftovers, start
from tests.integration.test_mariadb_engine import (
    ENGINE_USER,
    MARIADBD,
    Server,
    bare_server_fixture,
)
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks("mariadb_pitr", MARIADBD, "MariaDB is not installed")

QUIET_S = 2.5
BINARY = bytes(range(256))
TEXT = "Grüße, 東京, ёлка, 🙂"
STARTED = ["data", "engine.log", "my.cnf", "run"]

free_port = engine_harness.PortRange(23000, 23299).take

workspace = engine_harness.workspace_fixture("cfmyp-")
engine = engine_harness.engine_fixture(build_engine, ENGINE_USER)


new_server = bare_server_fixture(free_port)


class ShippedLogs:
    """A ``LogSource`` over a directory of shipped binary log files (one file each)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def names(self) -> list[str]:
        return sorted(path.name for path in self.directory.iterdir())

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        with (self.directory / name).open("rb") as stream:
            yield stream


class Shipper:
    """Ships the source's binary log as the agent does: each call appends every file's
    bytes up to ``ready`` that were not shipped yet."""

    def __init__(self, source: Server, since: dict[str, str], directory: Path) -> None:
        self.source = source
        self.since = since
        self.directory = directory
        self.archive = MariaDBLogArchive()
        directory.mkdir()
        self.listings: list[list[LogFile]] = []

    def ship(self) -> None:
        paths, spec = self.source.paths, self.source.spec
        committed = self.archive.position(paths, spec)
        files = self.archive.files(paths, spec, self.since)
        self.listings.append(files)
        # the contract: everything committed before position() lies within what is listed
        assert files and (files[-1].name, files[-1].ready) >= (committed.name, committed.offset)
        for log in files:
            target = self.directory / log.name
            shipped = target.stat().st_size if target.exists() else 0
            with log.path.open("rb") as source, target.open("ab") as out:
                source.seek(shipped)
                out.write(source.read(log.ready - shipped))


class History:
    """The source, its backups, the shipped log, and the contents at each target."""

    def __init__(self, source: Server, workspace: Path) -> None:
        self.source = source
        self.full_file = workspace / "full.xb"
        self.incremental_file = workspace / "incremental.xb"
        write_initial(source)
        self.full = backup(source, self.full_file)
        self.at_full = contents(source)
        self.shipper = Shipper(source, self.full.positions, workspace / "shipped")
        self.shipper.ship()

        group_1(source)
        self.at_1, self.target_1 = self._quiet_after()
        group_2(source)
        self.incremental: BackupOutcome = backup(source, self.incremental_file, self.full)
        group_3(source)
        self.at_3, self.target_3 = self._quiet_after()
        group_4(source)
        self.at_end = contents(source)
        self.target_end = datetime.now(UTC)
        self.shipper.ship()
        self.logs = ShippedLogs(self.shipper.directory)

    def _quiet_after(self) -> tuple[dict[str, list[tuple[Any, ...]]], datetime]:
        """Contents now, and a target halfway into QUIET_S of no writes (shipping in it)."""
        snapshot = contents(self.source)
        ended = time.time()
        self.shipper.ship()
        time.sleep(max(0.0, ended + QUIET_S - time.time()))
        return snapshot, datetime.fromtimestamp(ended + QUIET_S / 2, UTC)


def write_initial(server: Server) -> None:
    server.query("CREATE DATABASE shop")
    server.query("CREATE TABLE shop.items (id INT PRIMARY KEY, label VARCHAR(100), data BLOB)")
    server.query(
        "INSERT INTO shop.items SELECT seq, CONCAT('item ', seq), UNHEX(REPEAT('00FF', seq))"
        " FROM shop.seq_1_to_100"
    )
    server.query("CREATE TABLE shop.notes (n INT, body TEXT) ENGINE=Aria")
    server.query(f"INSERT INTO shop.notes VALUES (1, '{TEXT}')")


def group_1(server: Server) -> None:
    """Rows, a multi-statement transaction, a rotation, DDL, binary data, an account."""
    server.query(
        "INSERT INTO shop.items SELECT seq, CONCAT('g1 ', seq), NULL FROM shop.seq_101_to_150"
    )
    server.query("UPDATE shop.items SET label = CONCAT(label, ' ✓') WHERE id <= 10")
    conn = pymysql.connect(unix_socket=str(socket_path(server.paths)), user="root")
    try:
        with conn.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("INSERT INTO shop.items VALUES (500, %s, %s)", (TEXT, BINARY))
            cursor.execute("UPDATE shop.items SET data = %s WHERE id = 11", (BINARY[::-1],))
            cursor.execute("COMMIT")
    finally:
        conn.close()
    server.query("FLUSH BINARY LOGS")
    server.query("DELETE FROM shop.items WHERE id BETWEEN 50 AND 59")
    server.query("INSERT INTO shop.notes VALUES (2, 'aria in group 1')")
    server.query("CREATE DATABASE lab")
    server.query("CREATE TABLE lab.samples (k VARBINARY(16) PRIMARY KEY, v LONGBLOB)")
    server.query("INSERT INTO lab.samples VALUES (X'00FF0A0D', X'DEADBEEF00'), ('ключ', 'знач')")
    # bootstrap drops anonymous accounts: the roll forward must come before it
    server.query("CREATE USER ''@'127.0.0.1'")


def group_2(server: Server) -> None:
    server.query("INSERT INTO shop.items SELECT seq, 'g2', NULL FROM shop.seq_151_to_160")
    server.query("DELETE FROM shop.notes WHERE n = 1")
    server.query("DROP TABLE lab.samples")


def group_3(server: Server) -> None:
    server.query("INSERT INTO shop.items SELECT seq, 'g3', NULL FROM shop.seq_161_to_170")
    server.query("FLUSH BINARY LOGS")
    server.query("UPDATE shop.items SET label = 'g3 changed' WHERE id BETWEEN 151 AND 155")
    server.query("CREATE TABLE lab.extra (id INT PRIMARY KEY AUTO_INCREMENT, b BLOB)")
    server.query("INSERT INTO lab.extra (b) VALUES (X'00'), (X'FFFE'), (NULL)")


def group_4(server: Server) -> None:
    server.query("INSERT INTO shop.items SELECT seq, 'g4', NULL FROM shop.seq_171_to_180")
    server.query("TRUNCATE TABLE lab.extra")
    server.query("INSERT INTO shop.notes VALUES (4, 'aria in group 4')")


@pytest.fixture(scope="module")
def history(new_server: Callable[[str], Server], workspace: Path) -> History:
    source = new_server("source")
    source.engine.lifecycle.prepare(source.paths, source.spec)
    start(source)
    return History(source, workspace)


def restore(server: Server, chain: list[Path], target: datetime, logs: ShippedLogs) -> None:
    streams = [path.open("rb") for path in chain]
    try:
        server.engine.backups.restore(server.paths, server.spec, streams, Recovery(target, logs))
    finally:
        for stream in streams:
            stream.close()


def plan(server: Server) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (server.paths.root / "restore_binlog" / "plan.json").read_text()
    )
    return loaded


def anonymous_accounts(server: Server) -> list[tuple[Any, ...]]:
    return server.query("SELECT Host FROM mysql.user WHERE User = ''")


def log_names(history: History) -> list[str]:
    return [log.name for log in history.shipper.listings[-1]]


# --- tests -------------------------------------------------------------------------------


def test_files_lists_the_log_from_the_backup_on(history: History) -> None:
    listings = history.shipper.listings
    first = history.full.positions["binlog_file"]
    final = listings[-1]
    names = [log.name for log in final]
    assert names[0] == first and names == sorted(names) and len(names) == 3
    for log in final[:-1]:
        assert log.complete and log.ready == log.path.stat().st_size
        assert log.path == history.source.paths.data_dir / log.name and log.path.is_absolute()
    last = final[-1]
    assert not last.complete
    position = MariaDBLogArchive().position(history.source.paths, history.source.spec)
    assert (position.name, position.offset) == (last.name, last.ready)
    # a file listed as being written was later listed complete, and shipped in pieces
    assert not listings[0][0].complete and listings[1][0].complete
    shipped = history.logs.directory
    assert [path.name for path in sorted(shipped.iterdir())] == names
    for log in final[:-1]:
        # closing a file clears the "in use" flag of its first event (byte 21), which the
        # copy shipped while it was open keeps; every other byte is the same
        on_disk, copy = log.path.read_bytes(), (shipped / log.name).read_bytes()
        assert (copy[21] & 1, on_disk[21] & 1) == (1, 0)
        assert len(copy) == len(on_disk) and (copy[:21], copy[22:]) == (on_disk[:21], on_disk[22:])


def test_log_files_close_at_a_sixteenth_of_a_small_volume(history: History) -> None:
    assert history.source.spec.volume_gb == 1
    assert history.source.query("SELECT @@max_binlog_size") == [(64 * 1024 * 1024,)]


def test_files_refuses_a_backup_without_a_binlog_file(history: History) -> None:
    archive, source = MariaDBLogArchive(), history.source
    for since in ({}, {"binlog_file": "../../etc/passwd"}, {"binlog_file": ""}):
        with pytest.raises(EngineError, match="no valid binary log file name"):
            archive.files(source.paths, source.spec, since)


def test_restore_full_to_a_time_between_two_groups(
    history: History, new_server: Callable[[str], Server]
) -> None:
    server = new_server("to-target-1")
    restore(server, [history.full_file], history.target_1, history.logs)
    staged = plan(server)
    assert staged["start_file"] == history.full.positions["binlog_file"]
    assert staged["start_position"] == int(history.full.positions["binlog_position"])
    # the file opened by group 3's rotation begins after the target: not staged
    assert staged["files"] == log_names(history)[:2]
    start(server)
    assert contents(server) == history.at_1
    assert history.at_full != history.at_1 != history.at_3
    assert anonymous_accounts(server) == []
    assert leftovers(server.paths.root) == STARTED
    (grants,) = server.query("SHOW GRANTS FOR root@localhost")[0]
    assert "unix_socket" in grants and "mysql_native_password" not in grants
    assert server.engine.backups.check(server.paths, server.spec).endswith(" OK")


def test_restore_full_and_incremental_to_a_later_time(
    history: History, new_server: Callable[[str], Server]
) -> None:
    server = new_server("chain-to-target-3")
    chain = [history.full_file, history.incremental_file]
    restore(server, chain, history.target_3, history.logs)
    staged = plan(server)
    # the prepared chain ends where the incremental ended (its xtrabackup_binlog_info)
    assert staged["start_file"] == history.incremental.positions["binlog_file"]
    assert staged["start_position"] == int(history.incremental.positions["binlog_position"])
    assert staged["start_file"] != history.full.positions["binlog_file"]
    assert staged["files"] == log_names(history)[1:]
    start(server)
    assert contents(server) == history.at_3
    assert history.at_3 != history.at_end


def test_restore_to_after_the_last_write_gives_everything(
    history: History, new_server: Callable[[str], Server]
) -> None:
    server = new_server("to-the-end")
    restore(server, [history.full_file], history.target_end, history.logs)
    assert plan(server)["files"] == log_names(history)
    start(server)
    assert contents(server) == history.at_end
    assert anonymous_accounts(server) == []
    assert history.source.query("SELECT Host FROM mysql.user WHERE User = ''") == [("127.0.0.1",)]
    # the replay kept the source's transaction ids and went to the new binary log
    ((source_last,),) = history.source.query("SELECT @@gtid_binlog_pos")
    assert source_last.startswith(f"0-{server_id(history.source.instance_id)}-")
    ((state,),) = server.query("SELECT @@gtid_binlog_state")
    assert source_last in state.split(",")


@pytest.mark.parametrize("damage", ["start file", "middle file", "not a binlog"])
def test_a_missing_or_bad_shipped_log_fails_and_leaves_nothing(
    history: History, new_server: Callable[[str], Server], workspace: Path, damage: str
) -> None:
    copy = workspace / f"shipped-{damage.replace(' ', '-')}"
    shutil.copytree(history.logs.directory, copy)
    names = log_names(history)
    if damage == "start file":
        (copy / names[0]).unlink()
        message = f"the binary log {names[0]} the backup ends in was not shipped"
    elif damage == "middle file":
        (copy / names[1]).unlink()
        message = f"the binary log {names[1]} was not shipped"
    else:
        (copy / names[1]).write_bytes(b"not a binary log at all, but long enough")
        message = f"the shipped file {names[1]} is not a binary log"
    server = new_server(f"broken-{damage.replace(' ', '-')}")
    with pytest.raises(EngineError, match=message):
        restore(server, [history.full_file], history.target_end, ShippedLogs(copy))
    assert not server.paths.data_dir.exists()
    assert leftovers(server.paths.root) == []
    shutil.rmtree(copy)


def test_a_target_before_the_backups_log_file_is_refused(
    history: History, new_server: Callable[[str], Server]
) -> None:
    server = new_server("too-early")
    with pytest.raises(EngineError, match="lies before the binary log"):
        restore(server, [history.full_file], datetime(2001, 1, 1, tzinfo=UTC), history.logs)
    with pytest.raises(EngineError, match="has no time zone"):
        restore(server, [history.full_file], datetime(2099, 1, 1), history.logs)
    assert leftovers(server.paths.root) == []


def test_a_failed_roll_forward_is_not_applied_twice(
    history: History, new_server: Callable[[str], Server]
) -> None:
    server = new_server("conflicted")
    restore(server, [history.full_file], history.target_1, history.logs)
    server.engine.lifecycle.configure(server.paths, server.spec)
    server.start()
    # a database the log is about to create (group 1) makes the replay fail midway
    server.query("CREATE DATABASE lab")
    lifecycle = server.engine.lifecycle
    with pytest.raises(EngineError, match=r"mariadb client failed .*database exists"):
        lifecycle.bootstrap(server.paths, server.spec)
    assert (server.paths.root / "restore_binlog" / "apply-begun").exists()
    applied = contents(server)
    assert applied["shop.items"] != history.at_full["shop.items"]  # group 1 began
    with pytest.raises(EngineError, match="interrupted point-in-time roll-forward cannot be"):
        lifecycle.bootstrap(server.paths, server.spec)
    assert contents(server) == applied
