"""MariaDB GTID replication against real MariaDB 10.11 servers, driven as the agent does.

A source with data opens itself to replicas (``open_source``), takes a full backup per
replica; each replica is restored from it, told to ``follow`` while stopped (with the
backup's positions as the seed), configured, started and bootstrapped. Then: changes
propagate, replicas refuse tenant writes, ``state`` reports roles and positions,
restarts keep a replica following, bad upstreams are refused, an instance with a
history its upstream lacks is refused, and a planned switchover (fence the source,
wait for the replica, promote it) lets the old source and the other replica follow the
new primary. Every wait polls the data; nothing asserts a duration. Ports: 23900-24199.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from coffer.contracts.engine import DatabaseSpec, UserSpec
from coffer.engines.base import Replication, Upstream
from coffer.engines.host import EngineUser
from coffer.engines.mariadb import build_engine
from coffer.engines.mariadb.catalog import REPLICATION_USER
from coffer.engines.mariadb.replication import FENCE_MARKER, PENDING_FOLLOW, REPLICA_MARKER
from coffer.errors import BadRequest, EngineError
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
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks(
    "mariadb_replication", MARIADBD, "MariaDB is not installed"
)

free_port = engine_harness.PortRange(23900, 24199).take

workspace = engine_harness.workspace_fixture("cfmyr-")
engine = engine_harness.engine_fixture(build_engine, ENGINE_USER)

REPLICATION_PASSWORD = secrets.token_urlsafe(18)
APP_PASSWORD = "app-pa$$word"
ROOT_PASSWORD = "r00t-pa$$"
WAIT_S = 60.0


new_server = bare_server_fixture(free_port)


def replication_of(server: Server) -> Replication:
    assert server.engine.replication is not None
    return server.engine.replication


def upstream(source: Server, facts: dict[str, str], seed: dict[str, str] | None = None) -> Upstream:
    return Upstream(
        host="127.0.0.1",
        port=source.spec.port,
        user=REPLICATION_USER,
        password=REPLICATION_PASSWORD,
        facts=facts,
        seed=seed or {},
    )


def seeded_replica(
    new_server: Callable[[str], Server], source: Server, name: str, workspace: Path
) -> Server:
    """A replica made as the agent makes one: open the source, back it up, restore,
    follow while stopped, configure, start, bootstrap."""
    replica = new_server(name)
    facts = replication_of(source).open_source(
        source.paths, source.spec, replica.instance_id, REPLICATION_USER, REPLICATION_PASSWORD
    )
    seed_file = workspace / f"{name}.xb"
    outcome = backup(source, seed_file)
    with seed_file.open("rb") as stream:
        replica.engine.backups.restore(replica.paths, replica.spec, [stream])
    seed_file.unlink()
    follows = replication_of(replica).follow(
        replica.paths, replica.spec, upstream(source, facts, outcome.positions)
    )
    assert follows is False  # nothing to restart: bootstrap starts following
    assert (replica.paths.root / PENDING_FOLLOW).exists()
    start(replica)
    assert not (replica.paths.root / PENDING_FOLLOW).exists()
    # the source is idle: the replica's own log numbering continues after the seed
    assert outcome.positions["gtid"]
    assert replica.query("SELECT @@gtid_binlog_state") == [(outcome.positions["gtid"],)]
    return replica


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT_S:.0f} s: {what}")
        time.sleep(0.05)


def has_label(server: Server, label: str) -> bool:
    return label in {str(row[0]) for row in server.query("SELECT label FROM shop.items")}


def position(server: Server) -> int:
    return replication_of(server).state(server.paths, server.spec).position


def at_position(server: Server, target: int) -> bool:
    return position(server) == target


def insert(server: Server, label: str) -> None:
    """A tenant write (the app user over TCP)."""
    conn = server.tcp("app", APP_PASSWORD, "shop")
    try:
        run(conn, f"INSERT INTO items (label) VALUES ('{label}')")
    finally:
        conn.close()


def wait_for(label: str, *servers: Server) -> None:
    for server in servers:
        wait_until(partial(has_label, server, label), f"{label!r} on {server.paths.root.name}")


def tenant_writes_refused(server: Server) -> None:
    for user, password in (("app", APP_PASSWORD), ("root", ROOT_PASSWORD)):
        conn = server.tcp(user, password, "shop")
        try:
            refused(READ_ONLY, partial(run, conn, "INSERT INTO items (label) VALUES ('no')"))
            refused(READ_ONLY, partial(run, conn, "CREATE TABLE sneaky (x INT)"))
        finally:
            conn.close()


@dataclass
class Topology:
    source: Server
    first: Server
    second: Server


@pytest.fixture(scope="module")
def topology(new_server: Callable[[str], Server], workspace: Path) -> Topology:
    source = new_server("source")
    source.engine.lifecycle.prepare(source.paths, source.spec)
    start(source)
    source.admin.create_databases([DatabaseSpec(name="shop")])
    source.admin.create_users([UserSpec(name="app", password=APP_PASSWORD, databases=("shop",))])
    source.admin.enable_root(ROOT_PASSWORD)
    source.query("CREATE TABLE shop.items (id INT AUTO_INCREMENT PRIMARY KEY, label TEXT)")
    source.query("INSERT INTO shop.items (label) VALUES ('seeded-1'), ('seeded-2')")
    first = seeded_replica(new_server, source, "first", workspace)
    insert(source, "between-seeds")  # the second seed starts later in the log
    second = seeded_replica(new_server, source, "second", workspace)
    return Topology(source, first, second)


def test_seeded_replicas_follow_read_only_and_report_state(topology: Topology) -> None:
    source, first, second = topology.source, topology.first, topology.second
    wait_for("between-seeds", first)
    assert contents(first) == contents(source) == contents(second)
    before = replication_of(source).state(source.paths, source.spec)
    assert (before.role, before.streaming, before.lag_s) == ("primary", False, None)
    insert(source, "after-seeds")
    wait_for("after-seeds", first, second)
    after = replication_of(source).state(source.paths, source.spec)
    assert after.position > before.position > 0
    for replica in (first, second):
        tenant_writes_refused(replica)
        wait_until(
            partial(at_position, replica, after.position),
            "the replica's position reaches the source's",
        )
        state = replication_of(replica).state(replica.paths, replica.spec)
        assert (state.role, state.streaming) == ("replica", True)
        assert state.lag_s is not None and state.lag_s >= 0
        assert f"127.0.0.1:{source.spec.port}" in state.detail
        assert replica.query("SELECT @@read_only") == [(1,)]
    ids = {server.query("SELECT @@server_id")[0][0] for server in (source, first, second)}
    assert len(ids) == 3


def test_replication_account_and_password_stay_private(topology: Topology) -> None:
    source, first = topology.source, topology.first
    grants = source.query(f"SHOW GRANTS FOR '{REPLICATION_USER}'@'%'")
    assert len(grants) == 1
    assert str(grants[0][0]).startswith("GRANT REPLICATION SLAVE ON *.* TO")
    for server in (source, first):
        assert REPLICATION_USER not in [user.name for user in server.admin.list_users()]
        with pytest.raises(BadRequest, match="reserved"):
            server.admin.delete_user(REPLICATION_USER, "%")
        with pytest.raises(BadRequest, match="reserved"):
            server.admin.create_users([UserSpec(name=REPLICATION_USER, password="x")])
    # the account was made outside the binary log: the replica has it from the backup
    assert first.query(f"SELECT COUNT(*) FROM mysql.user WHERE User = '{REPLICATION_USER}'") == [
        (1,)
    ]
    marker = first.paths.root / REPLICA_MARKER
    info = marker.stat()
    owner = EngineUser.lookup(first.paths.os_user)
    assert (info.st_mode & 0o777, info.st_uid) == (0o600, owner.uid)
    for path in (marker, first.paths.root / "my.cnf", first.paths.log_file, source.paths.log_file):
        assert REPLICATION_PASSWORD not in path.read_text(errors="replace"), path
    assert "read_only = ON" in (first.paths.root / "my.cnf").read_text()


def test_bad_upstreams_are_refused_and_change_nothing(
    topology: Topology, new_server: Callable[[str], Server]
) -> None:
    source, second = topology.source, topology.second
    replication = replication_of(second)
    good = upstream(source, {})
    bad = [
        (Upstream("127.0.0.1'; DROP", good.port, good.user, good.password), "host"),
        (Upstream(good.host, 0, good.user, good.password), "port"),
        (Upstream(good.host, good.port, "bad name", good.password), "user"),
        (Upstream(good.host, good.port, good.user, ""), "empty"),
        (Upstream(good.host, good.port, good.user, "x" * 33), "at most 32"),
        (Upstream(good.host, good.port, good.user, good.password, seed={"lsn": "1"}), "gtid"),
        (
            Upstream(good.host, good.port, good.user, good.password, seed={"gtid": "0-1"}),
            "GTID list",
        ),
    ]
    for wrong, message in bad:
        with pytest.raises(BadRequest, match=message):
            replication.follow(second.paths, second.spec, wrong)
    with pytest.raises(BadRequest, match=REPLICATION_USER):
        replication_of(source).open_source(source.paths, source.spec, "r", "app", "pw")
    state = replication.state(second.paths, second.spec)
    assert (state.role, state.streaming) == ("replica", True)
    assert f"127.0.0.1:{source.spec.port}" in state.detail
    insert(source, "after-bad-input")
    wait_for("after-bad-input", second)
    # a stopped engine can follow only from a backup's position
    idle = new_server("idle")
    idle.engine.lifecycle.prepare(idle.paths, idle.spec)
    with pytest.raises(BadRequest, match="seed"):
        replication.follow(idle.paths, idle.spec, good)
    assert not (idle.paths.root / PENDING_FOLLOW).exists()
    assert not (idle.paths.root / REPLICA_MARKER).exists()


def test_restarted_replica_still_follows(topology: Topology) -> None:
    source, second = topology.source, topology.second
    second.stop()
    insert(source, "while-stopped")
    second.engine.lifecycle.configure(second.paths, second.spec)  # as before every start
    second.start()
    wait_for("while-stopped", second)
    assert second.query("SELECT @@read_only") == [(1,)]
    second.engine.lifecycle.apply_parameters(second.paths, second.spec)
    assert second.query("SELECT @@read_only") == [(1,)]
    tenant_writes_refused(second)
    state = replication_of(second).state(second.paths, second.spec)
    assert (state.role, state.streaming) == ("replica", True)


def test_instance_with_a_foreign_history_is_refused(
    topology: Topology, new_server: Callable[[str], Server]
) -> None:
    stranger = new_server("stranger")
    stranger.engine.lifecycle.prepare(stranger.paths, stranger.spec)
    start(stranger)
    stranger.query("CREATE DATABASE own")
    stranger.query("CREATE TABLE own.t (x INT)")
    stranger.query("INSERT INTO own.t VALUES (1)")
    with pytest.raises(EngineError, match="binary log lacks this instance"):
        replication_of(stranger).follow(
            stranger.paths, stranger.spec, upstream(topology.source, {})
        )
    assert stranger.query("SELECT COUNT(*) FROM own.t") == [(1,)]


def test_backup_of_a_replica_restores_as_a_primary(
    topology: Topology, new_server: Callable[[str], Server], workspace: Path
) -> None:
    second = topology.second
    copy_file = workspace / "of-replica.xb"
    backup(second, copy_file)
    copy = new_server("copy")
    with copy_file.open("rb") as stream:
        copy.engine.backups.restore(copy.paths, copy.spec, [stream])
    copy_file.unlink()
    start(copy)
    state = replication_of(copy).state(copy.paths, copy.spec)
    assert state.role == "primary", state.detail
    assert copy.query("SHOW SLAVE STATUS") == []
    assert copy.query("SELECT @@read_only") == [(0,)]
    insert(copy, "on-the-copy")
    assert has_label(copy, "on-the-copy") and not has_label(topology.source, "on-the-copy")


def test_switchover_old_source_and_other_replica_follow_the_new_primary(
    topology: Topology,
) -> None:
    """Runs last in this module: it changes the roles of the topology."""
    source, first, second = topology.source, topology.first, topology.second
    insert(source, "before-switchover")
    final = replication_of(source).fence(source.paths, source.spec)
    tenant_writes_refused(source)
    assert "read_only = ON" in _restart_config(source)
    assert replication_of(source).state(source.paths, source.spec).role == "primary"
    wait_until(
        lambda: position(first) >= final, "the replica reaches the fenced source's final position"
    )
    replication_of(first).promote(first.paths, first.spec)
    promoted = replication_of(first).state(first.paths, first.spec)
    assert promoted.role == "primary" and promoted.position >= final
    assert first.query("SELECT @@read_only") == [(0,)]
    assert not (first.paths.root / REPLICA_MARKER).exists()
    insert(first, "on-new-primary")
    replication_of(first).promote(first.paths, first.spec)  # a primary is left as it is
    assert first.query("SELECT @@read_only") == [(0,)]

    facts = replication_of(first).open_source(
        first.paths, first.spec, second.instance_id, REPLICATION_USER, REPLICATION_PASSWORD
    )
    assert replication_of(second).follow(second.paths, second.spec, upstream(first, facts)) is False
    assert replication_of(source).follow(source.paths, source.spec, upstream(first, facts)) is False
    insert(first, "after-repoint")
    wait_for("on-new-primary", source, second)
    wait_for("after-repoint", source, second)
    assert contents(source) == contents(first) == contents(second)
    for replica in (source, second):
        state = replication_of(replica).state(replica.paths, replica.spec)
        assert (state.role, state.streaming) == ("replica", True)
        assert f"127.0.0.1:{first.spec.port}" in state.detail
        tenant_writes_refused(replica)

    # nothing is kept per replica: closing leaves the shared account and the stream
    replication_of(first).close_source(first.paths, first.spec, second.instance_id)
    assert first.query(f"SELECT COUNT(*) FROM mysql.user WHERE User = '{REPLICATION_USER}'") == [
        (1,)
    ]
    insert(first, "after-close")
    wait_for("after-close", source, second)

    # the old source is a replica across restarts now, and no longer fenced once promoted
    source.stop()
    source.engine.lifecycle.configure(source.paths, source.spec)
    source.start()
    insert(first, "after-old-source-restart")
    wait_for("after-old-source-restart", source)
    replication_of(source).promote(source.paths, source.spec)
    assert not (source.paths.root / FENCE_MARKER).exists()
    assert source.query("SELECT @@read_only") == [(0,)]


def _restart_config(server: Server) -> str:
    """The configuration the next start would read."""
    server.engine.lifecycle.configure(server.paths, server.spec)
    return (server.paths.root / "my.cnf").read_text()
