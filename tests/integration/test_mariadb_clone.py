"""Instant clones of MariaDB instances, engine side: ``Lifecycle.adopt_copy`` on a copy of
a running instance's root, against real MariaDB 10.11 servers.

The agent freezes the source's XFS volume (``xfs_freeze -f``) for the moment of a reflink
copy of its image. These engine tests have no XFS volume, so they copy the root with
``cp -a --reflink=auto`` while the source runs, holding ``FLUSH TABLES WITH READ LOCK``
(no commit lands during the copy) and waiting first until InnoDB has written its log and
flushed its pages (so no background write races the file-by-file copy). The copy is
then given to the clone's own OS account as the agent does (``hand_over``), adopted,
configured, started and bootstrapped; the server still recovers from a crash at its
first start (the binary log was open).

Cases: a primary that is the source of a replica; its running replica; the same primary
once fenced. Each clone holds the contents at the copy and the source's accounts,
accepts writes, follows nothing and has no replication account of the source's; the
source goes on serving (and its replica following it) untouched. Ports: 24700-24899.
"""

from __future__ import annotations

import re
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped,unused-ignore]
import pytest

from coffer.contracts.engine import DatabaseSpec, UserSpec
from coffer.engines.host import EngineUser, hand_over
from coffer.engines.mariadb import build_engine
from coffer.engines.mariadb.catalog import REPLICATION_USER
from coffer.engines.mariadb.config import server_id, socket_path
from coffer.engines.mariadb.lifecycle import ADOPTED_COPY
from coffer.engines.mariadb.replication import FENCE_MARKER, PENDING_FOLLOW, REPLICA_MARKER
from coffer.errors import EngineError
from tests.integration.test_mariadb_backup import backup, contents, start
from tests.integration.test_mariadb_engine import (
    ENGINE_USER,
    MARIADBD,
    READ_ONLY,
    Server,
    bare_server_fixture,
    refused,
    run,
)
from tests.integration.test_mariadb_replication import (
    APP_PASSWORD,
    ROOT_PASSWORD,
    has_label,
    insert,
    replication_of,
    seeded_replica,
    wait_for,
)
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks("mariadb_clone", MARIADBD, "MariaDB is not installed")

free_port = engine_harness.PortRange(24700, 24899).take

workspace = engine_harness.workspace_fixture("cfmyc-")
engine = engine_harness.engine_fixture(build_engine, ENGINE_USER)

QUIET_S = 60.0
_STATUS_LSNS = ("Log sequence number", "Log flushed up to", "Pages flushed up to")
#: magic, then the first event's header: timestamp, type, server id
_BINLOG_HEAD = struct.Struct("<4sIBI")


new_server = bare_server_fixture(free_port)


@dataclass
class Pair:
    source: Server
    replica: Server


@pytest.fixture(scope="module")
def pair(new_server: Callable[[str], Server], workspace: Path) -> Pair:
    """A primary with data, tenant accounts and root enabled, and its replica."""
    source = new_server("source")
    source.engine.lifecycle.prepare(source.paths, source.spec)
    start(source)
    source.admin.create_databases([DatabaseSpec(name="shop")])
    source.admin.create_users([UserSpec(name="app", password=APP_PASSWORD, databases=("shop",))])
    source.admin.enable_root(ROOT_PASSWORD)
    source.query("CREATE TABLE shop.items (id INT AUTO_INCREMENT PRIMARY KEY, label TEXT)")
    source.query("CREATE TABLE shop.notes (n INT, body TEXT) ENGINE=Aria")
    source.query("INSERT INTO shop.items (label) VALUES ('seeded-1'), ('Grüße, 東京')")
    source.query("INSERT INTO shop.notes VALUES (1, 'aria')")
    replica = seeded_replica(new_server, source, "replica", workspace)
    insert(source, "before-clones")
    wait_for("before-clones", replica)
    return Pair(source, replica)


# --- copying a running instance -------------------------------------------------------------


def innodb_quiet(lock: Any) -> bool:
    """No dirty page, and the log written and flushed up to its end."""
    ((_name, dirty),) = run(lock, "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
    ((_kind, _what, status),) = run(lock, "SHOW ENGINE INNODB STATUS")
    lsns = {
        int(found[1])
        for label in _STATUS_LSNS
        if (found := re.search(rf"^{label}\s+([0-9]+)", str(status), re.MULTILINE))
    }
    return int(dirty) == 0 and len(lsns) == 1


def copy_running(source: Server, clone: Server) -> dict[str, list[tuple[Any, ...]]]:
    """Copy ``source``'s root to ``clone``'s while it runs, give the copy to the clone's
    account as the agent does, and return the source's contents at the copy. (The agent
    freezes the XFS volume and reflink-copies its image instead.)"""
    lock = pymysql.connect(unix_socket=str(socket_path(source.paths)), user="root")
    try:
        run(lock, "FLUSH TABLES WITH READ LOCK")
        at_copy = contents(source)
        run(lock, "SET GLOBAL innodb_max_dirty_pages_pct = 0")
        try:
            deadline = time.monotonic() + QUIET_S
            while not innodb_quiet(lock):
                if time.monotonic() > deadline:
                    pytest.fail(f"InnoDB of {source.paths.root.name} not quiet in {QUIET_S} s")
                time.sleep(0.05)
            subprocess.run(
                ["cp", "-a", "--reflink=auto", str(source.paths.root), str(clone.paths.root)],
                check=True,
            )
        finally:
            run(lock, "SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT")
        run(lock, "UNLOCK TABLES")
    finally:
        lock.close()
    source_user = EngineUser.lookup(source.paths.os_user)
    hand_over(clone.paths.root, source_user.uid, EngineUser.lookup(clone.paths.os_user))
    return at_copy


@dataclass
class Copy:
    #: the source's contents at the copy
    contents: dict[str, list[tuple[Any, ...]]]
    #: the binary log files the copy holds (the source's)
    binlogs: set[str]


def cloned(source: Server, clone: Server) -> Copy:
    """Copy ``source`` into ``clone``, adopt the copy, configure, start, bootstrap, as
    the agent does."""
    copy = Copy(copy_running(source, clone), binlog_names(clone))
    clone.engine.lifecycle.adopt_copy(clone.paths, clone.spec)
    clone.engine.lifecycle.adopt_copy(clone.paths, clone.spec)  # idempotent
    start(clone)
    return copy


def binlog_names(server: Server) -> set[str]:
    return {path.name for path in server.paths.data_dir.glob("mariadb-bin.[0-9]*")}


def binlog_server_id(path: Path) -> int:
    with path.open("rb") as handle:
        magic, _stamp, _kind, origin = _BINLOG_HEAD.unpack(handle.read(_BINLOG_HEAD.size))
    assert magic == b"\xfebin"
    return int(origin)


def assert_standalone_primary(clone: Server) -> None:
    """Follows nothing, is neither a replica nor fenced, holds none of the source's
    replication or run-time files, accepts tenant writes."""
    state = replication_of(clone).state(clone.paths, clone.spec)
    assert (state.role, state.streaming, state.detail) == ("primary", False, "primary")
    assert clone.query("SHOW SLAVE STATUS") == []
    assert clone.query("SELECT @@read_only, @@server_id") == [(0, server_id(clone.instance_id))]
    for name in (REPLICA_MARKER, PENDING_FOLLOW, FENCE_MARKER, ADOPTED_COPY):
        assert not (clone.paths.root / name).exists(), name
    for name in ("master.info", "relay-log.info"):
        assert not (clone.paths.data_dir / name).exists(), name
    # the source's replication account (and the password its replicas use) is gone
    assert clone.query(f"SELECT COUNT(*) FROM mysql.user WHERE User = '{REPLICATION_USER}'") == [
        (0,)
    ]
    insert(clone, "on-the-clone")
    conn = clone.tcp("root", ROOT_PASSWORD, "shop")  # the source's root@% came along
    try:
        run(conn, "INSERT INTO notes VALUES (2, 'root on the clone')")
    finally:
        conn.close()


# --- the cases -------------------------------------------------------------------------------


def test_clone_of_a_primary_with_a_replica(
    pair: Pair, new_server: Callable[[str], Server], workspace: Path
) -> None:
    source, replica = pair.source, pair.replica
    clone = new_server("of-primary")
    copy = cloned(source, clone)
    assert copy.binlogs

    assert contents(clone) == copy.contents
    assert_standalone_primary(clone)
    assert not has_label(source, "on-the-clone") and not has_label(replica, "on-the-clone")

    # the source serves on, its replica follows it, and the clone takes none of it
    insert(source, "after-clone")
    wait_for("after-clone", replica)
    assert not has_label(clone, "after-clone")
    assert source.query(f"SELECT COUNT(*) FROM mysql.user WHERE User = '{REPLICATION_USER}'") == [
        (1,)
    ]
    state = replication_of(replica).state(replica.paths, replica.spec)
    assert (state.role, state.streaming) == ("replica", True)

    # the clone's log archive starts at its first full backup, in files of its own
    outcome = backup(clone, workspace / "clone-full.xb")
    (workspace / "clone-full.xb").unlink()
    assert clone.engine.logs is not None
    shipped = clone.engine.logs.files(clone.paths, clone.spec, outcome.positions)
    assert shipped
    assert not {log.name for log in shipped} & copy.binlogs
    for log in shipped:
        assert binlog_server_id(log.path) == server_id(clone.instance_id)


def test_clone_of_a_replica_is_a_standalone_primary(
    pair: Pair, new_server: Callable[[str], Server]
) -> None:
    source, replica = pair.source, pair.replica
    clone = new_server("of-replica")
    assert (replica.paths.root / REPLICA_MARKER).exists()
    assert (replica.paths.data_dir / "master.info").exists()
    copy = cloned(replica, clone)

    assert contents(clone) == copy.contents
    assert_standalone_primary(clone)

    # the source's changes reach its replica, not the clone of the replica
    insert(source, "after-replica-clone")
    wait_for("after-replica-clone", replica)
    assert not has_label(clone, "after-replica-clone")
    assert not has_label(replica, "on-the-clone")
    assert replica.query("SELECT @@read_only") == [(1,)]
    state = replication_of(replica).state(replica.paths, replica.spec)
    assert (state.role, state.streaming) == ("replica", True)

    # across a restart too
    clone.stop()
    start(clone)
    assert clone.query("SHOW SLAVE STATUS") == []
    assert replication_of(clone).state(clone.paths, clone.spec).role == "primary"


def test_bad_copies_are_refused_and_change_nothing(
    pair: Pair, new_server: Callable[[str], Server], workspace: Path
) -> None:
    lifecycle = pair.source.engine.lifecycle
    # not a MariaDB data directory (e.g. a PostgreSQL volume)
    stranger = new_server("not-mariadb")
    (stranger.paths.data_dir / "base").mkdir(parents=True)
    (stranger.paths.data_dir / "PG_VERSION").write_text("15\n")
    (stranger.paths.root / REPLICA_MARKER).write_text("{}\n")
    with pytest.raises(EngineError, match="not a MariaDB data directory"):
        lifecycle.adopt_copy(stranger.paths, stranger.spec)
    assert (stranger.paths.root / REPLICA_MARKER).exists()
    assert not (stranger.paths.root / ADOPTED_COPY).exists()

    # a copy taken in the middle of a point-in-time roll forward
    midway = new_server("midway")
    copy_running(pair.source, midway)
    staged = midway.paths.root / "restore_binlog"
    staged.mkdir()
    (staged / "apply-begun").write_text("begun\n")
    with pytest.raises(EngineError, match="roll forward"):
        lifecycle.adopt_copy(midway.paths, midway.spec)
    assert (midway.paths.root / "my.cnf").exists()
    assert (midway.paths.run_dir / "mariadbd.pid").exists()
    assert not (midway.paths.root / ADOPTED_COPY).exists()


def test_clone_of_a_fenced_primary_accepts_writes(
    pair: Pair, new_server: Callable[[str], Server]
) -> None:
    """Runs last: it fences the source (and lifts the fence at the end)."""
    source, replica = pair.source, pair.replica
    replication_of(source).fence(source.paths, source.spec)
    try:
        clone = new_server("of-fenced")
        copy = cloned(source, clone)
        assert contents(clone) == copy.contents
        assert_standalone_primary(clone)

        # the source stays fenced: it serves reads and refuses tenant writes
        assert (source.paths.root / FENCE_MARKER).exists()
        assert replication_of(source).state(source.paths, source.spec).detail == ("primary, fenced")
        conn = source.tcp("app", APP_PASSWORD, "shop")
        try:
            refused(READ_ONLY, lambda: run(conn, "INSERT INTO items (label) VALUES ('no')"))
            assert run(conn, "SELECT COUNT(*) FROM items WHERE label = 'on-the-clone'") == [(0,)]
        finally:
            conn.close()
    finally:
        replication_of(source).promote(source.paths, source.spec)
    insert(source, "after-fence-lifted")
    wait_for("after-fence-lifted", replica)
    assert not has_label(clone, "after-fence-lifted")
