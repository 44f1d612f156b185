"""PostgreSQL streaming replication against real PostgreSQL 15 servers, driven the way the
agent drives it.

A source with data is opened for a replica, backed up, and the backup restored into the
replica, which follows (stopped), is configured, started and bootstrapped. The scenario
then checks propagation, read-only replicas, ``state`` of both roles, a fence (writes
refused, lifted, the final position reached by both replicas), promotion, a second
replica re-pointed (running) to the promoted one, the old source rejoining as a replica
of it after it diverged (``pg_rewind``), a restart of a replica, and ``close_source``.
Bad inputs are refused before anything changes. Instances run from a world-traversable
``/tmp/cfpgr-*`` root on ports 23600-23899; every server is stopped and the root removed
by finalizers.
"""

from __future__ import annotations

import pwd
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from coffer.contracts.engine import DatabaseSpec, UserSpec
from coffer.engines.base import Engine, InstancePaths, ReplicaState, Replication, Upstream
from coffer.engines.postgresql import build_engine
from coffer.engines.postgresql.catalog import REPLICATION_USER
from coffer.engines.postgresql.connection import connect
from coffer.engines.postgresql.replication import slot_name
from coffer.errors import BadRequest, EngineError
from tests.integration.test_postgresql_engine import ENGINE_USER, POSTGRES, Server
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks(
    "postgresql_replication", POSTGRES, "PostgreSQL 15 is not installed"
)

APP_PASSWORD = "app-pw-19"
#: the source's replication password (with the characters a password file escapes)
REPL_PASSWORD = "repl:pw\\42-Ünïcode"
NEW_REPL_PASSWORD = "second-primary-pw"
WAIT_S = 60.0

free_port = engine_harness.PortRange(23600, 23899).take


class Instance(Server):
    """The engine test's ``Server`` on this module's ports."""

    def __init__(self, engine: Engine, root: Path) -> None:
        super().__init__(engine, root, port=free_port())
        self.paths = InstancePaths(root=root, os_user=ENGINE_USER)

    @property
    def replication(self) -> Replication:
        assert self.engine.replication is not None
        return self.engine.replication

    def state(self) -> ReplicaState:
        return self.replication.state(self.paths, self.spec)

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with connect(self.paths, self.spec) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def items(self) -> set[int]:
        with self.tcp("app", APP_PASSWORD, "shop") as conn:
            return {row[0] for row in conn.execute("SELECT id FROM items")}

    def insert(self, *ids: int) -> None:
        with self.tcp("app", APP_PASSWORD, "shop") as conn:
            for item in ids:
                conn.execute("INSERT INTO items VALUES (%s, %s)", (item, f"item {item}"))

    def configure_start_bootstrap(self) -> None:
        """What the agent does after ``follow``: configure, start, bootstrap; bootstrap
        must come back although a replica never ends its recovery."""
        self.engine.lifecycle.prepare(self.paths, self.spec)
        self.engine.lifecycle.configure(self.paths, self.spec)
        self.start()
        done = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self.engine.lifecycle.bootstrap(self.paths, self.spec)
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, daemon=True).start()
        assert done.wait(WAIT_S), "bootstrap blocked on a replica"
        assert not errors, errors

    def restart(self) -> None:
        self.stop()
        self.configure_start_bootstrap()


def wait_until(check: Callable[[], bool], what: str, *logs_of: Instance) -> None:
    """Poll ``check`` until true; fail naming ``what`` (with the log tails of
    ``logs_of``) if it never becomes true."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    logs = "\n".join(f"--- {i.paths.root.name}:\n{i.log_tail()}" for i in logs_of)
    pytest.fail(f"never happened: {what}\n{logs}")


def upstream_of(source: Instance, facts: dict[str, str], password: str, **extra: Any) -> Upstream:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": source.spec.port,
        "user": REPLICATION_USER,
        "password": password,
        "facts": facts,
    }
    values.update(extra)
    return Upstream(**values)


workspace = engine_harness.workspace_fixture("cfpgr-")
engine = engine_harness.engine_fixture(build_engine, ENGINE_USER)


#: factory of (not yet prepared) instances; every one started is stopped at the end
instances = engine_harness.fleet_fixture("instances", Instance, lambda s: [s.stop])


@pytest.fixture(scope="module")
def source(instances: Callable[[str], Instance]) -> Instance:
    server = instances("src")
    server.prepare_and_configure()
    server.start()
    server.engine.lifecycle.bootstrap(server.paths, server.spec)
    server.admin.create_databases([DatabaseSpec(name="shop")])
    server.admin.create_users([UserSpec(name="app", password=APP_PASSWORD, databases=("shop",))])
    with server.tcp("app", APP_PASSWORD, "shop") as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, label text)")
    server.insert(1, 2, 3)
    return server


def seed_replica(
    instances: Callable[[str], Instance], source: Instance, name: str, workspace: Path
) -> Instance:
    """A replica made as the agent makes one: open the source, back it up, restore the
    backup into the new instance, follow (stopped), configure, start, bootstrap."""
    facts = source.replication.open_source(
        source.paths, source.spec, name, REPLICATION_USER, REPL_PASSWORD
    )
    backup_file = workspace / f"seed-{name}.tar"
    with open(backup_file, "wb") as sink:
        outcome = source.engine.backups.backup(source.paths, source.spec, sink)
    replica = instances(name)
    with open(backup_file, "rb") as stream:
        replica.engine.backups.restore(replica.paths, replica.spec, [stream])
    backup_file.unlink()
    upstream = upstream_of(source, facts, REPL_PASSWORD, seed=outcome.positions)
    assert replica.replication.follow(replica.paths, replica.spec, upstream) is False
    assert (replica.paths.data_dir / "standby.signal").is_file()
    assert not (replica.paths.data_dir / "recovery.signal").exists()
    assert not (replica.paths.root / "restore_wal").exists()
    replica.configure_start_bootstrap()
    return replica


def assert_secret_kept(instance: Instance, password: str) -> None:
    """The password is only in the instance's own 0600 password file."""
    passfile = instance.paths.root / "upstream.pgpass"
    info = passfile.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == pwd.getpwnam(ENGINE_USER).pw_uid
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    assert escaped in passfile.read_text()
    for path in (
        instance.paths.data_dir / "coffer.conf",
        instance.paths.data_dir / "postgresql.auto.conf",
        instance.paths.root / "upstream.json",
        instance.paths.log_file,
    ):
        assert password not in path.read_text(errors="replace"), path
    (conninfo,) = instance.sql("SELECT conninfo FROM pg_stat_wal_receiver")[0]
    assert password not in conninfo


def slots_of(instance: Instance) -> set[str]:
    return {row[0] for row in instance.sql("SELECT slot_name::text FROM pg_replication_slots")}


def test_replicas_follow_promote_rejoin_and_close(
    instances: Callable[[str], Instance], source: Instance, workspace: Path
) -> None:
    repl = source.replication

    # --- a replica seeded from a backup follows its source --------------------------
    replica = seed_replica(instances, source, "replica-a", workspace)
    assert slot_name("replica-a") in slots_of(source)
    assert replica.items() == {1, 2, 3}
    source.insert(4)
    wait_until(lambda: 4 in replica.items(), "a write on the source reaches the replica")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        replica.insert(100)
    assert_secret_kept(replica, REPL_PASSWORD)

    primary_state = source.state()
    assert primary_state.role == "primary" and primary_state.position > 0
    wait_until(lambda: replica.state().streaming, "the replica streams")
    before = replica.state()
    assert before.role == "replica"
    assert f":{source.spec.port}" in before.detail
    source.insert(5)
    wait_until(lambda: replica.state().position > before.position, "the replica's position grows")
    wait_until(
        lambda: replica.state().lag_s == 0.0 and replica.state().position >= primary_state.position,
        "the replica catches up (lag 0)",
    )

    # --- bad inputs are refused and change nothing ----------------------------------
    with pytest.raises(BadRequest, match=REPLICATION_USER):
        repl.open_source(source.paths, source.spec, "x", "someone", REPL_PASSWORD)
    with pytest.raises(EngineError, match="replica"):
        repl.open_source(replica.paths, replica.spec, "x", REPLICATION_USER, REPL_PASSWORD)
    facts = repl.open_source(source.paths, source.spec, "b", REPLICATION_USER, REPL_PASSWORD)
    with pytest.raises(EngineError, match="runs as a primary"):
        repl.follow(source.paths, source.spec, upstream_of(replica, facts, REPL_PASSWORD))
    with pytest.raises(BadRequest, match="slot"):
        repl.follow(replica.paths, replica.spec, upstream_of(source, {}, REPL_PASSWORD))
    alien = {**facts, "system_identifier": "12345"}
    with pytest.raises(EngineError, match="another database cluster"):
        repl.follow(replica.paths, replica.spec, upstream_of(source, alien, REPL_PASSWORD))
    with pytest.raises(BadRequest, match="host"):
        repl.follow(
            replica.paths, replica.spec, upstream_of(source, facts, REPL_PASSWORD, host="a b")
        )
    assert not (source.paths.data_dir / "standby.signal").exists()
    assert not (source.paths.root / "upstream.json").exists()
    assert f"port={source.spec.port}" in (replica.paths.data_dir / "coffer.conf").read_text()

    # --- a second replica (opened again with the right password) --------------------
    second = seed_replica(instances, source, "replica-b", workspace)
    source.insert(6)
    wait_until(lambda: 6 in second.items() and 6 in replica.items(), "both replicas follow")

    # --- a fence refuses writes until lifted, then gives the position to reach -------
    repl.fence(source.paths, source.spec)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        source.insert(102)
    assert (
        "default_transaction_read_only = on" in (source.paths.data_dir / "coffer.conf").read_text()
    )
    repl.promote(source.paths, source.spec)  # lifts the fence of a primary
    source.insert(7)
    final = repl.fence(source.paths, source.spec)
    wait_until(
        lambda: replica.state().position >= final and second.state().position >= final,
        "both replicas reach the fenced source's final position",
    )
    assert {7, 6} <= replica.items() and 7 in second.items()

    # --- switchover: the source stops, the replica is promoted ----------------------
    source.stop()
    repl.promote(replica.paths, replica.spec)
    repl.promote(replica.paths, replica.spec)  # a primary is left as it is
    assert replica.state().role == "primary"
    replica.insert(10)
    assert 10 in replica.items()
    assert not (replica.paths.root / "upstream.json").exists()
    assert not (replica.paths.root / "upstream.pgpass").exists()
    assert "primary_conninfo" not in (replica.paths.data_dir / "coffer.conf").read_text()

    # --- the second replica is re-pointed, running, to the new primary ---------------
    facts_b = repl.open_source(
        replica.paths, replica.spec, "replica-b", REPLICATION_USER, NEW_REPL_PASSWORD
    )
    new_upstream = upstream_of(replica, facts_b, NEW_REPL_PASSWORD)
    assert repl.follow(second.paths, second.spec, new_upstream) is False
    wait_until(lambda: 10 in second.items(), "the re-pointed replica gets the new primary's write")
    wait_until(
        lambda: f":{replica.spec.port}" in second.state().detail and second.state().streaming,
        "the re-pointed replica streams from the new primary",
    )
    assert_secret_kept(second, NEW_REPL_PASSWORD)

    # --- the old source diverges, then rejoins as a replica (pg_rewind) -------------
    source.engine.lifecycle.configure(source.paths, source.spec)
    source.start()
    repl.promote(source.paths, source.spec)  # lifts its fence: it goes on as a primary
    source.insert(99)  # only the old source ever has this one
    source.stop()
    facts_old = repl.open_source(
        replica.paths, replica.spec, "old-source", REPLICATION_USER, NEW_REPL_PASSWORD
    )
    old_upstream = upstream_of(replica, facts_old, NEW_REPL_PASSWORD)
    assert repl.follow(source.paths, source.spec, old_upstream) is False
    source.configure_start_bootstrap()
    wait_until(
        lambda: 10 in source.items(), "the rewound old source gets the new data", source, replica
    )
    assert 99 not in source.items()
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        source.insert(101)
    replica.insert(11)
    wait_until(lambda: 11 in source.items() and 11 in second.items(), "both follow the new one")
    wait_until(lambda: source.state().streaming, "the old source streams")
    assert source.state().role == "replica"
    assert slots_of(source) == set()  # its own replicas' slots went with the rewind

    # --- a restarted replica still follows ------------------------------------------
    second.restart()
    replica.insert(12)
    wait_until(lambda: 12 in second.items(), "the restarted replica still follows")
    assert second.state().role == "replica"

    # --- close_source drops the slots open_source kept ------------------------------
    kept = {slot_name("replica-b"), slot_name("old-source")}
    assert kept <= slots_of(replica)
    repl.close_source(replica.paths, replica.spec, "replica-b")  # held by a streaming replica
    repl.close_source(replica.paths, replica.spec, "replica-b")  # idempotent
    repl.close_source(replica.paths, replica.spec, "old-source")
    assert slots_of(replica).isdisjoint(kept)


def test_slot_names_are_valid_and_distinct() -> None:
    ids = ["replica-a", "replica_a", "Replica_A", "9d6e2c3a-4b1f-4c8e-9a57-0f3b2d1e6c7a", "x" * 80]
    names = [slot_name(replica_id) for replica_id in ids]
    assert len(set(names)) == len(names)
    for name in names:
        assert len(name) <= 63 and name.startswith("coffer_")
        assert all(char.isdigit() or char == "_" or "a" <= char <= "z" for char in name)
    assert slot_name("r1") == "coffer_r1"
    with pytest.raises(BadRequest):
        slot_name("")
