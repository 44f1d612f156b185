"""Instant clones of PostgreSQL instances (``Lifecycle.adopt_copy``) against real
PostgreSQL 15 servers, driven the way the agent drives them.

The agent freezes the source's XFS volume and reflink-copies its image; there is no such
volume here, so the test makes the on-disk state consistent the cheap way PostgreSQL
allows (a ``CHECKPOINT``, no writes during the copy; crash recovery at the clone's first
start does the rest) and copies the running source's root with ``cp -a --reflink=auto``.
The copy is handed to another OS account (Debian's ``postgres``) as the agent does
(``host.hand_over``), adopted, configured, started and bootstrapped.

Cases: a clone of a running primary that archives its WAL (equal contents, its own
timeline, writable, no archive of the source's, the source unaffected, adopting again
later a no-op, a clone of the clone); bad inputs refused and nothing changed; a clone of
a running replica (a standalone primary following nothing) and of a fenced primary with
a replica's slot (writable, no slot, the source still fenced and its replica still
streaming). Instances run from a world-traversable ``/tmp/cfpgc-*`` root on ports
24500-24699; every server is stopped and the root removed by finalizers.
"""

from __future__ import annotations

import io
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from coffer.contracts.engine import DatabaseSpec, UserSpec
from coffer.engines.base import Engine, InstancePaths, Replication, Upstream
from coffer.engines.host import EngineUser, hand_over
from coffer.engines.postgresql import build_engine
from coffer.engines.postgresql.backup import archived_wal_files
from coffer.engines.postgresql.catalog import REPLICATION_USER
from coffer.engines.postgresql.connection import connect
from coffer.errors import EngineError
from tests.integration.test_postgresql_engine import ENGINE_USER, POSTGRES, Server
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks(
    "postgresql_clone", POSTGRES, "PostgreSQL 15 is not installed"
)

APP_PASSWORD = "app-pw-clone'7"
REPL_PASSWORD = "repl-pw:clone"
#: the clones' OS account, another than the sources'
CLONE_OS_USER = "postgres"
WAIT_S = 60.0

free_port = engine_harness.PortRange(24500, 24699).take


class Instance(Server):
    """The engine test's ``Server`` on this module's ports, run as ``os_user``."""

    def __init__(self, engine: Engine, root: Path, os_user: str = ENGINE_USER) -> None:
        super().__init__(engine, root, port=free_port())
        self.paths = InstancePaths(root=root, os_user=os_user)

    @property
    def replication(self) -> Replication:
        assert self.engine.replication is not None
        return self.engine.replication

    def sql(self, statement: str, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        with connect(self.paths, self.spec, dbname=dbname) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def items(self) -> set[int]:
        with self.tcp("app", APP_PASSWORD, "shop") as conn:
            return {row[0] for row in conn.execute("SELECT id FROM items")}

    def insert(self, *ids: int) -> None:
        with self.tcp("app", APP_PASSWORD, "shop") as conn:
            for item in ids:
                conn.execute("INSERT INTO items VALUES (%s, %s)", (item, f"item {item}"))

    def rows(self) -> list[tuple[Any, ...]]:
        with self.tcp("app", APP_PASSWORD, "shop") as conn:
            return conn.execute("SELECT id, label FROM items ORDER BY id").fetchall()

    def timeline(self) -> str:
        (row,) = self.sql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
        return str(row[0])

    def slots(self) -> set[str]:
        return {row[0] for row in self.sql("SELECT slot_name::text FROM pg_replication_slots")}

    def configure_start_bootstrap(self) -> None:
        self.engine.lifecycle.configure(self.paths, self.spec)
        self.start()
        self.engine.lifecycle.bootstrap(self.paths, self.spec)


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"never happened: {what}")


def copy_root(source: Instance, target: Path) -> None:
    """A copy of the running source's root. The agent freezes the volume for an atomic
    copy; here a checkpoint with no writes running makes ``cp -a`` copy a state that
    crash recovery turns into the source's at this moment."""
    source.sql("CHECKPOINT")
    subprocess.run(
        ["cp", "-a", "--reflink=auto", str(source.paths.root), str(target)],
        check=True,
        capture_output=True,
    )


workspace = engine_harness.workspace_fixture("cfpgc-")
engine = engine_harness.engine_fixture(build_engine, ENGINE_USER)


#: factory of (not yet prepared) instances; every one started is stopped at the end
instances = engine_harness.fleet_fixture("instances", Instance, lambda s: [s.stop])


@pytest.fixture(scope="module")
def clone_of(instances: Callable[..., Instance]) -> Callable[[Instance, str], Instance]:
    """Clone a running instance as the agent does: copy its root, hand the copy to the
    clone's account, adopt it (twice: idempotent), configure, start, bootstrap."""

    def clone(source: Instance, name: str) -> Instance:
        target = instances(name, CLONE_OS_USER)
        copy_root(source, target.paths.root)
        source_uid = pwd.getpwnam(source.paths.os_user).pw_uid
        hand_over(target.paths.root, source_uid, EngineUser.lookup(CLONE_OS_USER))
        target.engine.lifecycle.adopt_copy(target.paths, target.spec)
        target.engine.lifecycle.adopt_copy(target.paths, target.spec)
        target.configure_start_bootstrap()
        return target

    return clone


@pytest.fixture(scope="module")
def source(instances: Callable[..., Instance]) -> Instance:
    """A running primary with a database, a user and rows, archiving its WAL (backed up)."""
    server = instances("source")
    server.prepare_and_configure()
    server.start()
    server.engine.lifecycle.bootstrap(server.paths, server.spec)
    server.admin.create_databases([DatabaseSpec(name="shop")])
    server.admin.create_users([UserSpec(name="app", password=APP_PASSWORD, databases=("shop",))])
    with server.tcp("app", APP_PASSWORD, "shop") as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, label text)")
    server.insert(1, 2, 3)
    server.engine.backups.backup(server.paths, server.spec, io.BytesIO())
    server.insert(4)
    server.sql("SELECT pg_switch_wal()")
    wait_until(lambda: len(archived_wal_files(server.paths)) > 0, "the source archives WAL")
    return server


def assert_standalone_primary(clone: Instance, source: Instance) -> None:
    """No trace of the source's role: not in recovery, on a timeline of its own, no
    upstream, fence, slot or archive; every file the clone's account's."""
    assert clone.sql("SELECT pg_is_in_recovery()") == [(False,)]
    assert clone.timeline() != source.timeline()
    assert clone.sql("SELECT count(*) FROM pg_stat_wal_receiver") == [(0,)]
    assert clone.slots() == set()
    root, data = clone.paths.root, clone.paths.data_dir
    for gone in (
        data / "standby.signal",
        data / "recovery.signal",
        root / "upstream.json",
        root / "upstream.pgpass",
        root / "fenced",
        root / "restore_wal",
    ):
        assert not gone.exists(), gone
    assert archived_wal_files(clone.paths) == []
    assert os.listdir(root / "wal_archive") == []
    settings = (data / "coffer.conf").read_text()
    for absent in ("primary_conninfo", "default_transaction_read_only", "restore_command"):
        assert absent not in settings
    assert f"port = {clone.spec.port}" in settings
    assert str(clone.paths.run_dir) in settings
    socket = f".s.PGSQL.{clone.spec.port}"
    assert set(os.listdir(clone.paths.run_dir)) == {socket, f"{socket}.lock"}
    uid = pwd.getpwnam(CLONE_OS_USER).pw_uid
    for directory in (data, clone.paths.run_dir, root / "wal_archive"):
        assert {p.lstat().st_uid for p in [directory, *directory.rglob("*")]} == {uid}


def test_clone_of_a_running_primary(
    source: Instance,
    instances: Callable[..., Instance],
    clone_of: Callable[[Instance, str], Instance],
    workspace: Path,
) -> None:
    at_copy = source.rows()
    source_timeline = source.timeline()
    clone = clone_of(source, "clone-primary")

    # the source's data and accounts, writable, its own history and no archive yet
    assert clone.rows() == at_copy
    assert_standalone_primary(clone, source)
    clone.insert(100)
    assert 100 in clone.items()
    clone.sql("SELECT pg_switch_wal()")
    assert archived_wal_files(clone.paths) == []  # archiving starts with its own backup

    # the source is unaffected and still serving
    assert source.timeline() == source_timeline
    assert 100 not in source.items()
    source.insert(5)
    assert 5 in source.items() and 5 not in clone.items()
    assert archived_wal_files(source.paths) != []  # its archive is its own

    # once backed up itself, the clone archives into its own volume
    clone.engine.backups.backup(clone.paths, clone.spec, io.BytesIO())
    clone.insert(101)
    clone.sql("SELECT pg_switch_wal()")
    wait_until(lambda: len(archived_wal_files(clone.paths)) > 0, "the clone archives its WAL")
    archived = archived_wal_files(clone.paths)
    assert all(p.name[:8] != source_timeline for p in archived)

    # adopting again (a retried create) once the clone ran changes nothing
    clone.stop()
    clone.engine.lifecycle.adopt_copy(clone.paths, clone.spec)
    assert set(archived) <= set(archived_wal_files(clone.paths))  # (+ what its stop archived)
    assert (clone.paths.root / "wal_archive" / ".enabled").is_file()
    assert not (clone.paths.data_dir / "recovery.signal").exists()
    clone.configure_start_bootstrap()
    assert clone.timeline() == archived[0].name[:8]  # no new timeline either
    assert {100, 101} <= clone.items()

    # a clone of the clone is adopted although its source had adopted a copy itself
    second = clone_of(clone, "clone-of-clone")
    assert second.rows() == clone.rows()
    assert_standalone_primary(second, clone)


def test_bad_copies_are_refused_and_left_unchanged(
    source: Instance, instances: Callable[..., Instance], workspace: Path
) -> None:
    lifecycle = source.engine.lifecycle

    # not handed over to the instance's account yet
    unowned = instances("unowned", CLONE_OS_USER)
    copy_root(source, unowned.paths.root)
    with pytest.raises(EngineError, match="hand the copy over"):
        lifecycle.adopt_copy(unowned.paths, unowned.spec)
    assert (unowned.paths.data_dir / "postmaster.pid").is_file()
    assert (unowned.paths.root / "wal_archive" / ".enabled").is_file()

    # not a PostgreSQL data directory
    alien = workspace / "alien"
    (alien / "data").mkdir(parents=True)
    (alien / "data" / "ibdata1").write_bytes(b"\0" * 16)
    with pytest.raises(EngineError, match="not a PostgreSQL data directory"):
        lifecycle.adopt_copy(InstancePaths(root=alien, os_user=ENGINE_USER), source.spec)
    assert os.listdir(alien) == ["data"]

    # the running instance itself
    with pytest.raises(EngineError, match="runs on"):
        lifecycle.adopt_copy(source.paths, source.spec)
    assert (source.paths.data_dir / "postmaster.pid").is_file()
    assert (source.paths.root / "wal_archive" / ".enabled").is_file()
    assert source.sql("SELECT 1") == [(1,)]
    shutil.rmtree(alien)


def test_clones_of_a_replica_and_of_a_fenced_primary(
    source: Instance,
    instances: Callable[..., Instance],
    clone_of: Callable[[Instance, str], Instance],
    workspace: Path,
) -> None:
    repl = source.replication
    facts = repl.open_source(source.paths, source.spec, "replica", REPLICATION_USER, REPL_PASSWORD)
    backup_file = workspace / "seed.tar"
    with open(backup_file, "wb") as sink:
        outcome = source.engine.backups.backup(source.paths, source.spec, sink)
    replica = instances("replica")
    with open(backup_file, "rb") as stream:
        replica.engine.backups.restore(replica.paths, replica.spec, [stream])
    backup_file.unlink()
    upstream = Upstream(
        host="127.0.0.1",
        port=source.spec.port,
        user=REPLICATION_USER,
        password=REPL_PASSWORD,
        facts=facts,
        seed=outcome.positions,
    )
    repl.follow(replica.paths, replica.spec, upstream)
    replica.configure_start_bootstrap()
    source.insert(20)
    wait_until(lambda: 20 in replica.items(), "the replica follows its source")

    # --- a clone of the running replica is a standalone primary ---------------------
    at_copy = replica.rows()
    of_replica = clone_of(replica, "clone-replica")
    assert of_replica.rows() == at_copy
    assert_standalone_primary(of_replica, source)
    of_replica.insert(200)
    source.insert(21)
    wait_until(lambda: 21 in replica.items(), "the replica still follows its source")
    assert 21 not in of_replica.items() and 200 not in source.items()
    assert replica.replication.state(replica.paths, replica.spec).role == "replica"
    senders = source.sql("SELECT application_name FROM pg_stat_replication")
    assert senders == [(facts["slot"],)]  # the replica's WAL sender alone

    # --- a clone of the fenced primary accepts writes and keeps no slot -------------
    final = repl.fence(source.paths, source.spec)
    wait_until(
        lambda: replica.replication.state(replica.paths, replica.spec).position >= final,
        "the replica reaches the fenced source's final position",
    )
    at_copy = source.rows()
    of_fenced = clone_of(source, "clone-fenced")
    assert of_fenced.rows() == at_copy
    assert_standalone_primary(of_fenced, source)
    of_fenced.insert(300)
    assert 300 in of_fenced.items()

    # the source is still fenced, keeps its replica's slot, and its replica streams
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        source.insert(301)
    assert source.slots() == {facts["slot"]}
    repl.promote(source.paths, source.spec)  # lifts the fence
    source.insert(22)
    wait_until(lambda: 22 in replica.items(), "the replica still follows the unfenced source")
    assert 22 not in of_fenced.items() and 300 not in source.items()
