"""Galera clusters of real MariaDB 10.11 servers (galera-4), driven as the agent will.

Three members, each its own OS account, port and root: the first bootstraps, two join
by SST (mariabackup); a write on one is read on another; a fourth member joins (grow)
and is removed again (shrink); bad joins are refused with nothing written; then every
member stops (the last one killed) and the cluster is recovered from the most advanced
member's position while the others rejoin. Waits poll the servers; nothing asserts a
duration. Ports: 25100-25499.
"""

from __future__ import annotations

import os
import pwd
import secrets
import signal
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped,unused-ignore]
import pytest

from coffer.engines.base import InstancePaths
from coffer.engines.mariadb import build_engine
from coffer.engines.mariadb import galera as g
from coffer.engines.mariadb.catalog import CATALOG, SST_USER
from coffer.errors import BadRequest, EngineError
from tests.integration.test_mariadb_engine import (
    ENGINE_USER,
    MARIADBD,
    Server,
    bare_server_fixture,
)
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks("galera", MARIADBD, "MariaDB is not installed")

free_port = engine_harness.PortRange(25100, 25499).take

workspace = engine_harness.workspace_fixture("cfgal-")
engine = engine_harness.engine_fixture(build_engine, ENGINE_USER)
new_server = bare_server_fixture(free_port)

CLUSTER = "coffer-test"
SST_PASSWORD = secrets.token_urlsafe(24)
WAIT_S = 120.0
#: Paths of no instance at all.
NOWHERE = InstancePaths(root=Path("/nonexistent/cfgal"), os_user="nobody")


def member_of(server: Server) -> g.GaleraMember:
    return g.GaleraMember(
        instance_id=server.instance_id,
        host="127.0.0.1",
        port=server.spec.port,
        gcomm_port=free_port(),
        ist_port=free_port(),
        sst_port=free_port(),
    )


def join(server: Server, me: g.GaleraMember, members: list[g.GaleraMember], *, first: bool) -> None:
    g.join_cluster(
        server.paths,
        server.spec,
        cluster_name=CLUSTER,
        me=me,
        members=members,
        bootstrap=first,
        sst_password=SST_PASSWORD,
    )


def start(server: Server) -> None:
    """configure, start and bootstrap, as the agent does (bootstrap waits for Synced)."""
    server.engine.lifecycle.configure(server.paths, server.spec)
    server.start()
    server.engine.lifecycle.bootstrap(server.paths, server.spec)


def kill(server: Server) -> None:
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)


def synced_query(server: Server, sql: str) -> list[tuple[Any, ...]]:
    """``sql`` after the node applied everything the cluster committed before it."""
    conn = pymysql.connect(
        unix_socket=str(server.paths.run_dir / "mariadbd.sock"), user="root", autocommit=True
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION wsrep_sync_wait = 1")
            cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        conn.close()


def wait_size(servers: list[Server], size: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        states = [g.galera_state(server.paths) for server in servers]
        if all(state.synced and state.cluster_size == size for state in states):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"cluster not {size} Synced members: {states}")
        time.sleep(0.2)


@dataclass
class Trio:
    servers: list[Server]
    members: list[g.GaleraMember]


@pytest.fixture(scope="module")
def trio(new_server: Callable[[str], Server]) -> Trio:
    servers = [new_server(f"g{index}") for index in (1, 2, 3)]
    members = [member_of(server) for server in servers]
    for index, (server, me) in enumerate(zip(servers, members, strict=True)):
        server.engine.lifecycle.prepare(server.paths, server.spec)
        join(server, me, members, first=index == 0)
        start(server)
    wait_size(servers, 3)
    # every test starts from these rows (tests may run in any order, on any worker)
    servers[0].query("CREATE DATABASE app")
    servers[0].query("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
    servers[0].query("INSERT INTO app.t VALUES (1, 'one'), (2, 'two')")
    return Trio(servers, members)


def test_three_members_are_synced_and_share_writes(trio: Trio) -> None:
    first, second, third = trio.servers
    wait_size(trio.servers, 3)
    state = g.galera_state(third.paths)
    assert state.primary and state.local_state is g.LocalState.SYNCED
    assert state.cluster_uuid == g.galera_state(first.paths).cluster_uuid
    assert synced_query(third, "SELECT v FROM app.t WHERE id = 1") == [("one",)]
    second.query("INSERT INTO app.t VALUES (3, 'three')")
    assert synced_query(first, "SELECT v FROM app.t WHERE id = 3") == [("three",)]
    # the bootstrap flag was cleared once Synced: a restart joins, it never re-bootstraps
    assert not g.bootstrapping(first.paths)
    command = first.engine.lifecycle.command(first.paths, first.spec)
    assert "--wsrep-new-cluster" not in command
    # the state transfer account came to the joiners with the data; tenants never see it
    assert synced_query(third, f"SELECT Host FROM mysql.user WHERE User = '{SST_USER}'") == [
        ("localhost",)
    ]
    assert SST_USER not in [user.name for user in first.admin.list_users()]
    with pytest.raises(BadRequest, match="reserved"):
        CATALOG.check_user_name(SST_USER)


def test_settings_and_secrets_stay_private(trio: Trio) -> None:
    first, _, third = trio.servers
    (row,) = synced_query(
        third,
        "SELECT @@wsrep_on, @@wsrep_cluster_name, @@wsrep_sst_method, @@binlog_format,"
        " @@innodb_autoinc_lock_mode, @@wsrep_provider_options LIKE '%ist.recv_addr = 127.0.0.1%'",
    )
    assert row == (1, CLUSTER, "mariabackup", "ROW", 2, 1)
    (address,) = third.query("SELECT @@wsrep_cluster_address")[0]
    assert address == "gcomm://" + ",".join(m.gcomm_address for m in trio.members)
    for server in trio.servers:
        account = pwd.getpwnam(server.os_user)
        marker = (server.paths.root / g.GALERA_MARKER).stat()
        assert (marker.st_uid, stat.S_IMODE(marker.st_mode)) == (account.pw_uid, 0o600)
        assert SST_PASSWORD not in server.log_tail()
        assert SST_PASSWORD not in server.paths.log_file.read_text(errors="replace")
        assert not any(
            SST_PASSWORD in arg
            for arg in server.engine.lifecycle.command(server.paths, server.spec)
        )
    assert g.galera_state(first.paths).seqno >= 0


def test_grow_to_four_then_shrink_to_three(trio: Trio, new_server: Callable[[str], Server]) -> None:
    first, _, third = trio.servers
    fourth = new_server("g4")
    fourth.engine.lifecycle.prepare(fourth.paths, fourth.spec)
    me = member_of(fourth)
    grown = [*trio.members, me]
    join(fourth, me, grown, first=False)
    for server in trio.servers:
        g.update_members(server.paths, server.spec, grown)
    start(fourth)  # joins by SST from a running member
    wait_size([*trio.servers, fourth], 4)
    assert synced_query(fourth, "SELECT v FROM app.t WHERE id IN (1, 2) ORDER BY id") == [
        ("one",),
        ("two",),
    ]
    fourth.query("INSERT INTO app.t VALUES (4, 'four')")
    assert synced_query(third, "SELECT v FROM app.t WHERE id = 4") == [("four",)]

    fourth.stop()  # a clean shutdown leaves the cluster
    for server in trio.servers:
        g.update_members(server.paths, server.spec, trio.members)
        server.engine.lifecycle.configure(server.paths, server.spec)
        assert me.gcomm_address not in (server.paths.root / "my.cnf").read_text()
    wait_size(trio.servers, 3)
    with pytest.raises(BadRequest, match="must include"):
        g.update_members(first.paths, first.spec, trio.members[1:])
    with pytest.raises(EngineError, match="not a member"):
        g.update_members(NOWHERE, first.spec, trio.members)


def test_bad_joins_are_refused_and_change_nothing(
    trio: Trio, new_server: Callable[[str], Server]
) -> None:
    first = trio.servers[0]
    stray = new_server("g5")
    stray.engine.lifecycle.prepare(stray.paths, stray.spec)
    me = member_of(stray)
    unknown = g.GaleraMember("my-unknown", "127.0.0.1", free_port(), *(free_port() for _ in "abc"))
    marker = stray.paths.root / g.GALERA_MARKER
    with pytest.raises(EngineError, match="no other member answers"):
        join(stray, me, [me, unknown], first=False)
    with pytest.raises(EngineError, match="already answers"):
        join(stray, me, [*trio.members, me], first=True)
    with pytest.raises(BadRequest, match="must include"):
        join(stray, me, trio.members, first=False)
    with pytest.raises(BadRequest, match="password"):
        g.join_cluster(
            stray.paths,
            stray.spec,
            cluster_name=CLUSTER,
            me=me,
            members=[*trio.members, me],
            bootstrap=False,
            sst_password="short:pw",
        )
    with pytest.raises(BadRequest, match="host"):
        bad_host = g.GaleraMember(me.instance_id, "127.0.0.1;x", me.port, 1, 2, 3)
        join(stray, bad_host, [bad_host], first=True)
    assert not marker.exists()
    # bootstrapping a member twice would start a second cluster
    with pytest.raises(EngineError, match="already is a member"):
        join(first, trio.members[0], trio.members, first=True)
    assert not g.bootstrapping(first.paths)


def test_whole_cluster_recovery_from_the_most_advanced_member(trio: Trio) -> None:
    first, second, third = trio.servers
    first.query("INSERT INTO app.t VALUES (10, 'all three')")
    third.stop()
    first.query("INSERT INTO app.t VALUES (11, 'two left')")
    second.stop()
    first.query("INSERT INTO app.t VALUES (12, 'alone')")
    kill(first)  # crashed: its grastate.dat holds no position

    positions = {server.instance_id: g.recovery_position(server.paths) for server in trio.servers}
    crashed = positions[first.instance_id]
    assert crashed.recovered and crashed.seqno >= 0
    assert not positions[second.instance_id].recovered
    assert len({position.uuid for position in positions.values()}) == 1
    assert crashed.seqno > positions[second.instance_id].seqno > positions[third.instance_id].seqno
    with pytest.raises(EngineError):
        g.mark_safe_to_bootstrap(NOWHERE)

    best = max(trio.servers, key=lambda server: positions[server.instance_id].seqno)
    assert best is first
    g.mark_safe_to_bootstrap(best.paths)
    assert "--wsrep-new-cluster" in best.engine.lifecycle.command(best.paths, best.spec)
    start(best)
    for server in (second, third):
        start(server)  # rejoin by IST (or SST)
    wait_size(trio.servers, 3)
    rows = synced_query(third, "SELECT id FROM app.t ORDER BY id")
    assert {1, 2, 10, 11, 12} <= {row[0] for row in rows}
    assert not g.bootstrapping(best.paths)
