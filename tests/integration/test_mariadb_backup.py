"""MariaDB backups and restores with mariadb-backup, against real MariaDB 10.11 servers.

One source instance takes a full backup, then an incremental, with writes before and
after each; restores go into new instances (own root, port and OS account), started
the way the agent starts them. Contents are compared table by table with snapshots
taken right after each backup (no writes run in between). Servers, accounts and
directories are removed by finalizers whatever happens. Ports: 18300-18599.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped,unused-ignore]
import pytest

from coffer.contracts.engine import DatabaseSpec, UserSpec
from coffer.engines.base import BackupOutcome
from coffer.engines.host import EngineUser, run_tool
from coffer.engines.mariadb import build_engine
from coffer.engines.mariadb.config import socket_path
from coffer.errors import EngineError, IntegrityError
from tests.integration.test_mariadb_engine import (
    ENGINE_USER,
    MARIADBD,
    Server,
    bare_server_fixture,
    run,
)
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks("mariadb_backup", MARIADBD, "MariaDB is not installed")

ACCESS_DENIED = 1045
SYSTEM = ("information_schema", "mysql", "performance_schema", "sys")
BINARY = bytes(range(256)) * 3
TEXT = "Grüße, 東京, ёлка, 🙂"

free_port = engine_harness.PortRange(18300, 18599).take


workspace = engine_harness.workspace_fixture("cfmyb-")
engine = engine_harness.engine_fixture(build_engine, ENGINE_USER)


new_server = bare_server_fixture(free_port)


def start(server: Server) -> None:
    """configure, start, wait until accepting, bootstrap: as the agent does."""
    server.engine.lifecycle.configure(server.paths, server.spec)
    server.start()
    server.engine.lifecycle.bootstrap(server.paths, server.spec)


def restored(new_server: Callable[[str], Server], name: str, chain: list[Path]) -> Server:
    server = new_server(name)
    streams = [path.open("rb") for path in chain]
    try:
        server.engine.backups.restore(server.paths, server.spec, streams)
    finally:
        for stream in streams:
            stream.close()
    start(server)
    return server


def contents(server: Server) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every user table, sorted."""
    tables = server.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
        f" WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN {SYSTEM!r}"
    )
    return {
        f"{db}.{table}": sorted(server.query(f"SELECT * FROM `{db}`.`{table}`"), key=repr)
        for db, table in tables
    }


def backup(server: Server, target: Path, parent: BackupOutcome | None = None) -> BackupOutcome:
    with target.open("wb") as sink:
        return server.engine.backups.backup(
            server.paths, server.spec, sink, None if parent is None else parent.positions
        )


class Chain:
    """The source, its backups, and the contents right after each."""

    def __init__(self, source: Server, workspace: Path) -> None:
        self.source = source
        self.full_file = workspace / "full.xb"
        self.incremental_file = workspace / "incremental.xb"
        self.full = backup(source, self.full_file)
        self.at_full = contents(source)
        writes_after_full(source)
        checkpoint_past(source, int(self.full.positions["to_lsn"]))
        self.incremental = backup(source, self.incremental_file, self.full)
        self.at_incremental = contents(source)
        writes_after_incremental(source)
        self.at_end = contents(source)


def checkpoint_past(server: Server, lsn: int) -> None:
    """Wait until an InnoDB checkpoint lies past ``lsn``, flushing every dirty page to
    bring it on (so the incremental ends at a later checkpoint than its parent, which
    the out-of-order chain test relies on)."""
    server.query("SET GLOBAL innodb_max_dirty_pages_pct = 0")
    try:
        deadline = time.monotonic() + 60
        while True:
            ((_kind, _name, status),) = server.query("SHOW ENGINE INNODB STATUS")
            found = re.search(r"^Last checkpoint at\s+([0-9]+)", str(status), re.MULTILINE)
            if found is not None and int(found[1]) > lsn:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"no InnoDB checkpoint past LSN {lsn} within 60 s")
            time.sleep(0.05)
    finally:
        server.query("SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT")


def write_initial(server: Server) -> None:
    admin = server.admin
    admin.create_databases([DatabaseSpec(name="shop"), DatabaseSpec(name="lab")])
    admin.create_users(
        [
            UserSpec(name="app", password="pa$$-w0rd!", databases=("shop",)),
            UserSpec(name="analyst", host="127.0.0.1", password="an4lyst", databases=("lab",)),
        ]
    )
    conn = server.tcp("app", "pa$$-w0rd!", "shop")
    try:
        run(conn, "CREATE TABLE items (id INT PRIMARY KEY, label VARCHAR(100), data BLOB)")
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO items VALUES (%s, %s, %s)",
                [(i, f"{TEXT} #{i}", BINARY[i:] + bytes([i % 256])) for i in range(1, 301)],
            )
        run(conn, "CREATE TABLE notes (n INT, body TEXT) ENGINE=Aria")
        run(conn, f"INSERT INTO notes VALUES (1, '{TEXT}'), (2, NULL)")
    finally:
        conn.close()
    server.query("CREATE TABLE lab.samples (k VARBINARY(64) PRIMARY KEY, v LONGBLOB)")
    server.query("INSERT INTO lab.samples VALUES (X'00FF10', X'DEADBEEF00'), ('ключ', 'значение')")
    server.query("CREATE TABLE lab.empty_one (x INT)")


def writes_after_full(server: Server) -> None:
    server.query("INSERT INTO shop.items VALUES (1001, 'после полной', X'0001FEFF')")
    server.query("UPDATE shop.items SET label = CONCAT(label, ' ✓') WHERE id <= 10")
    server.query("DELETE FROM shop.items WHERE id BETWEEN 200 AND 249")
    server.query("INSERT INTO shop.notes VALUES (3, 'aria after full')")
    server.query("CREATE DATABASE extra")
    server.query("CREATE TABLE extra.t (id INT PRIMARY KEY AUTO_INCREMENT, b BLOB)")
    server.query("INSERT INTO extra.t (b) VALUES (X'00'), (X'FFFE'), (NULL)")
    server.query("DROP TABLE lab.empty_one")


def writes_after_incremental(server: Server) -> None:
    server.query("INSERT INTO shop.items VALUES (2001, 'too late', NULL)")
    server.query("TRUNCATE TABLE extra.t")


@pytest.fixture(scope="module")
def source(new_server: Callable[[str], Server]) -> Server:
    server = new_server("source")
    server.engine.lifecycle.prepare(server.paths, server.spec)
    start(server)
    write_initial(server)
    return server


@pytest.fixture(scope="module")
def chain(source: Server, workspace: Path) -> Chain:
    return Chain(source, workspace)


class FailingStream(io.RawIOBase):
    """A backup stream that raises ``IntegrityError`` after ``limit`` bytes."""

    def __init__(self, path: Path, limit: int) -> None:
        self._data = path.read_bytes()[:limit]
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._offset >= len(self._data):
            raise IntegrityError("backup chunk 3 failed authentication")
        count = min(len(buffer), len(self._data) - self._offset)
        buffer[:count] = self._data[self._offset : self._offset + count]
        self._offset += count
        return count


def leftovers(root: Path) -> list[str]:
    return sorted(entry.name for entry in root.iterdir() if entry.name != ".coffer-prepare.lock")


# --- tests -------------------------------------------------------------------------------


def test_backup_positions_and_counts(chain: Chain) -> None:
    full, incremental = chain.full.positions, chain.incremental.positions
    assert full["backup_type"] == "full" and incremental["backup_type"] == "incremental"
    assert full["instance_id"] == incremental["instance_id"] == chain.source.instance_id
    assert full["from_lsn"] == "0"
    assert incremental["from_lsn"] == full["to_lsn"]
    assert int(incremental["to_lsn"]) > int(full["to_lsn"])
    assert full["binlog_file"].startswith("mariadb-bin.") and full["gtid"]
    assert full["server_version"].startswith("10.11.")
    assert chain.full.counts == {
        "lab.empty_one": 0,
        "lab.samples": 2,
        "shop.items": 300,
        "shop.notes": 2,
    }
    assert chain.incremental.counts == {
        "extra.t": 3,
        "lab.samples": 2,
        "shop.items": 251,
        "shop.notes": 3,
    }
    assert chain.full_file.stat().st_size > chain.incremental_file.stat().st_size > 0


def test_backup_leaves_no_scratch_files_and_no_password_login(chain: Chain) -> None:
    source = chain.source
    assert leftovers(source.paths.root) == ["data", "engine.log", "my.cnf", "run"]
    (grants,) = source.query("SHOW GRANTS FOR root@localhost")[0]
    assert "unix_socket" in grants and "mysql_native_password" not in grants
    # the temporary login never reached the binary log (replicas never see it)
    events = source.query("SHOW BINLOG EVENTS IN 'mariadb-bin.000001'")
    assert not [event for event in events if "mysql_native_password" in str(event[-1])]


def test_restore_full_equals_the_state_at_the_full_backup(
    chain: Chain, new_server: Callable[[str], Server]
) -> None:
    server = restored(new_server, "from-full", [chain.full_file])
    assert contents(server) == chain.at_full
    assert chain.at_full != chain.at_incremental
    backups = server.engine.backups
    assert backups.counts(server.paths, server.spec) == chain.full.counts
    summary = backups.check(server.paths, server.spec)
    assert summary.startswith("CHECK TABLE EXTENDED:") and summary.endswith(" OK")
    assert leftovers(server.paths.root) == ["data", "engine.log", "my.cnf", "run"]
    # tenant users keep their passwords and grants
    conn = server.tcp("app", "pa$$-w0rd!", "shop")
    assert run(conn, "SELECT label FROM items WHERE id = 1") == [(f"{TEXT} #1",)]
    conn.close()
    server.tcp("analyst", "an4lyst", "lab").close()
    with pytest.raises(pymysql.err.OperationalError) as denied:
        server.tcp("app", "wrong", "shop")
    assert denied.value.args[0] == ACCESS_DENIED


def test_restored_instance_is_managed_by_its_own_agent(
    chain: Chain, new_server: Callable[[str], Server]
) -> None:
    server = restored(new_server, "managed", [chain.full_file])
    (grants,) = server.query("SHOW GRANTS FOR root@localhost")[0]
    assert "unix_socket" in grants and "mysql_native_password" not in grants
    admin = server.admin
    admin.create_databases([DatabaseSpec(name="fresh")])
    admin.create_users([UserSpec(name="newbie", password="n3w", databases=("fresh", "shop"))])
    assert {db.name for db in admin.list_databases()} == {"fresh", "lab", "shop"}
    users = {(user.name, user.host): user.databases for user in admin.list_users()}
    assert users[("newbie", "%")] == ("fresh", "shop")
    assert users[("app", "%")] == ("shop",)
    conn = server.tcp("newbie", "n3w", "fresh")
    run(conn, "CREATE TABLE t (x INT)")
    conn.close()
    admin.delete_user("app", "%")
    assert ("app", "%") not in {(user.name, user.host) for user in admin.list_users()}
    # files belong to this instance's own OS account
    account = os.stat(server.paths.data_dir)
    assert account.st_uid != os.stat(chain.source.paths.data_dir).st_uid
    assert oct(account.st_mode & 0o777) == "0o700"
    for directory, _dirs, files in os.walk(server.paths.data_dir):
        for name in files:
            assert os.stat(os.path.join(directory, name)).st_uid == account.st_uid


def test_restore_full_and_incremental_equals_the_state_at_the_incremental(
    chain: Chain, new_server: Callable[[str], Server]
) -> None:
    server = restored(new_server, "from-chain", [chain.full_file, chain.incremental_file])
    assert contents(server) == chain.at_incremental
    assert chain.at_incremental != chain.at_end
    backups = server.engine.backups
    assert backups.counts(server.paths, server.spec) == chain.incremental.counts
    assert backups.check(server.paths, server.spec).endswith(" OK")
    conn = server.tcp("app", "pa$$-w0rd!", "shop")
    assert run(conn, "SELECT data FROM items WHERE id = 1001") == [(b"\x00\x01\xfe\xff",)]
    conn.close()


@pytest.mark.parametrize("failing", ["full", "incremental"])
def test_a_stream_failing_midway_leaves_nothing(
    chain: Chain, new_server: Callable[[str], Server], failing: str
) -> None:
    server = new_server(f"broken-{failing}")
    if failing == "full":
        streams: list[Any] = [FailingStream(chain.full_file, 3 * 1024 * 1024 + 17)]
    else:
        size = chain.incremental_file.stat().st_size
        streams = [chain.full_file.open("rb"), FailingStream(chain.incremental_file, size // 2)]
    try:
        with pytest.raises(IntegrityError, match="failed authentication"):
            server.engine.backups.restore(server.paths, server.spec, streams)
    finally:
        for stream in streams:
            stream.close()
    assert not server.paths.data_dir.exists()
    assert leftovers(server.paths.root) == []


def test_chain_out_of_order_is_refused_and_leaves_nothing(
    chain: Chain, new_server: Callable[[str], Server]
) -> None:
    server = new_server("misordered")
    for files, message in (
        ([chain.incremental_file], "not a full one"),
        ([chain.full_file, chain.incremental_file, chain.incremental_file], "out of order"),
    ):
        streams = [path.open("rb") for path in files]
        try:
            with pytest.raises(EngineError, match=message):
                server.engine.backups.restore(server.paths, server.spec, streams)
        finally:
            for stream in streams:
                stream.close()
        assert leftovers(server.paths.root) == []


def test_restore_refuses_an_existing_data_dir(chain: Chain) -> None:
    source = chain.source
    before = sorted(os.listdir(source.paths.data_dir))
    with chain.full_file.open("rb") as stream, pytest.raises(EngineError, match="already exists"):
        source.engine.backups.restore(source.paths, source.spec, [stream])
    assert sorted(os.listdir(source.paths.data_dir)) == before
    assert not (source.paths.root / ".coffer-restore").exists()


def test_incremental_with_a_bogus_parent_fails_clearly(chain: Chain, workspace: Path) -> None:
    source = chain.source
    positions = chain.full.positions
    cases = [
        ({**positions, "to_lsn": "999999999999"}, "ahead of this instance's log sequence number"),
        ({**positions, "instance_id": "my-someone-else"}, "not a backup|same instance"),
        ({k: v for k, v in positions.items() if k != "to_lsn"}, "no valid to_lsn"),
        ({**positions, "to_lsn": "12; rm -rf /"}, "no valid to_lsn"),
    ]
    for parent, message in cases:
        with (workspace / "bogus.xb").open("wb") as sink, pytest.raises(EngineError, match=message):
            source.engine.backups.backup(source.paths, source.spec, sink, parent)
        assert leftovers(source.paths.root) == ["data", "engine.log", "my.cnf", "run"]
    (grants,) = source.query("SHOW GRANTS FOR root@localhost")[0]
    assert "mysql_native_password" not in grants


def test_backup_while_writes_go_on_restores_a_consistent_state(
    source: Server, chain: Chain, workspace: Path, new_server: Callable[[str], Server]
) -> None:
    source.query("CREATE TABLE shop.ledger (id INT PRIMARY KEY AUTO_INCREMENT, amount INT)")
    source.query("CREATE TABLE shop.totals (k INT PRIMARY KEY, total INT, entries INT)")
    source.query("INSERT INTO shop.totals VALUES (1, 0, 0)")
    stop = threading.Event()
    written: list[int] = []
    failures: list[BaseException] = []

    def write() -> None:
        try:
            conn = source.tcp("app", "pa$$-w0rd!", "shop")
            conn.autocommit(False)
            try:
                while not stop.is_set():
                    amount = len(written) % 7 + 1
                    run(conn, f"INSERT INTO ledger (amount) VALUES ({amount})")
                    run(conn, f"UPDATE totals SET total = total + {amount}, entries = entries + 1")
                    conn.commit()
                    written.append(amount)
            finally:
                conn.close()
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 50 and writer.is_alive():
            time.sleep(0.01)
        before = len(written)
        busy = backup(source, workspace / "busy.xb")
        during = len(written)
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not failures and during > before >= 50, "writes went on during the backup"
    server = restored(new_server, "from-busy", [workspace / "busy.xb"])
    ((entries, total),) = server.query("SELECT entries, total FROM shop.totals")
    ((rows, amount),) = server.query("SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM shop.ledger")
    assert (rows, amount) == (entries, total)
    assert before <= rows <= len(written)
    assert [row[0] for row in server.query("SELECT amount FROM shop.ledger ORDER BY id")] == (
        written[:rows]
    )
    assert busy.counts["shop.ledger"] >= rows
    assert server.engine.backups.check(server.paths, server.spec).endswith(" OK")


def test_check_reports_damage(chain: Chain, new_server: Callable[[str], Server]) -> None:
    server = restored(new_server, "damaged", [chain.full_file])
    server.query("CREATE TABLE lab.fragile (id INT PRIMARY KEY, v VARCHAR(50)) ENGINE=MyISAM")
    server.query("INSERT INTO lab.fragile SELECT seq, CONCAT('row ', seq) FROM lab.seq_1_to_500")
    server.stop()
    data_file = server.paths.data_dir / "lab" / "fragile.MYD"
    with data_file.open("r+b") as handle:
        handle.truncate(data_file.stat().st_size // 2)
    server.start()
    with pytest.raises(EngineError, match=r"damage.*lab\.fragile"):
        server.engine.backups.check(server.paths, server.spec)


# --- what a backup killed with the agent leaves --------------------------------------------


#: Run by a child process: what ``backup`` does before mariadb-backup runs (the option
#: file with a one-time password, and that password on root@localhost), then SIGKILL.
KILLED_BACKUP = """
import os, signal, sys
from pathlib import Path
from coffer.engines.base import InstancePaths
from coffer.engines.host import EngineUser, write_private_file
from coffer.engines.mariadb.backup import _client_options, _password_login

paths = InstancePaths(root=Path(sys.argv[1]), os_user=sys.argv[2])
secret = sys.stdin.read()
scratch = paths.root / ".coffer-backup"
scratch.mkdir(mode=0o700)
user = EngineUser.lookup(paths.os_user)
write_private_file(scratch / "client.cnf", _client_options(paths, secret), user)
login = _password_login(paths, secret)  # held: a dropped one would end the login
login.__enter__()
os.kill(os.getpid(), signal.SIGKILL)
"""


def leave_a_killed_backup_behind(server: Server) -> str:
    """An agent SIGKILLed while mariadb-backup ran; returns the password it left."""
    secret = secrets.token_hex(24)
    died = subprocess.run(
        [sys.executable, "-c", KILLED_BACKUP, str(server.paths.root), server.paths.os_user],
        input=secret,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert died.returncode == -signal.SIGKILL, died.stderr
    return secret


def password_login(server: Server, secret: str) -> str:
    """Log in as root@localhost with ``secret`` from the instance's OS account (so
    ``unix_socket`` cannot admit it): the account's name, or the client's error."""
    socket = f"--socket={socket_path(server.paths)}"
    result = run_tool(
        EngineUser.lookup(server.paths.os_user),
        [
            *("/usr/bin/mariadb", "--no-defaults", "--user=root", f"--password={secret}"),
            *(socket, "--batch", "--skip-column-names", "--execute=SELECT CURRENT_USER()"),
        ],
    )
    return result.stdout.strip() if result.returncode == 0 else result.stderr.strip()


def test_a_killed_backups_password_and_option_file_are_gone_after_the_next_start(
    new_server: Callable[[str], Server],
) -> None:
    server = new_server("killed-mid-backup")
    server.engine.lifecycle.prepare(server.paths, server.spec)
    start(server)
    secret = leave_a_killed_backup_behind(server)
    assert password_login(server, secret) == "root@localhost"  # the leftover is live
    assert ".coffer-backup" in leftovers(server.paths.root)

    server.stop()
    start(server)  # configure, start, bootstrap: as the agent does

    assert leftovers(server.paths.root) == ["data", "engine.log", "my.cnf", "run"]
    (grants,) = server.query("SHOW GRANTS FOR root@localhost")[0]
    assert "unix_socket" in grants and "mysql_native_password" not in grants
    assert "Access denied for user 'root'@'localhost'" in password_login(server, secret)
    # neither the password nor its removal reached the binary log
    for log_name, *_size in server.query("SHOW BINARY LOGS"):
        events = server.query(f"SHOW BINLOG EVENTS IN '{log_name}'")
        assert not [event for event in events if "ALTER USER" in str(event[-1])]


def test_the_next_backup_ends_a_killed_backups_login_even_if_it_fails(
    new_server: Callable[[str], Server], workspace: Path
) -> None:
    server = new_server("killed-then-backed-up")
    server.engine.lifecycle.prepare(server.paths, server.spec)
    start(server)
    secret = leave_a_killed_backup_behind(server)
    # a parent ahead of this instance's log: refused after the leftovers are cleared
    parent = {"instance_id": server.instance_id, "to_lsn": "999999999999"}
    with (workspace / "refused.xb").open("wb") as sink, pytest.raises(EngineError, match="ahead"):
        server.engine.backups.backup(server.paths, server.spec, sink, parent)
    assert leftovers(server.paths.root) == ["data", "engine.log", "my.cnf", "run"]
    (grants,) = server.query("SHOW GRANTS FOR root@localhost")[0]
    assert "mysql_native_password" not in grants
    assert "Access denied for user 'root'@'localhost'" in password_login(server, secret)
