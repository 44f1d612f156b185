"""Redis Cluster, engine side, against real Redis 7.0 servers, each its own OS account.

Driven as the control plane and the agents will drive it: every member is prepared,
``enable_cluster``ed, configured, started, bootstrapped and opened like an instance;
the test then orders the per-member steps (meet, add slots, replicate, import, migrate,
assign, forget) as the control plane will. A tenant user is created on every member
through its own ``Admin`` and used by a cluster-aware client (``redis.cluster``).

Ports 25500-25899, each with its bus port (+ 10000) free. Every server is stopped by a
finalizer, then the accounts and the ``/tmp/cfrcl-*`` workspace are removed.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode as ClientNode
from redis.cluster import RedisCluster

from coffer.contracts.engine import UserSpec
from coffer.engines.base import Engine
from coffer.engines.redis import build_engine
from coffer.engines.redis.cluster import (
    SLOT_COUNT,
    ClusterHealth,
    ClusterSpec,
    ClusterState,
    NodeRole,
    Peer,
    RedisClusterMember,
    SlotMove,
    plan_rebalance,
    slot_ranges,
)
from coffer.engines.redis.config import cluster_path
from coffer.engines.redis.lifecycle import RedisLifecycle
from coffer.errors import BadRequest
from tests.integration.test_redis_engine import SERVER, Server, cleanup_steps
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks("redis_cluster", SERVER, "redis-server is not installed")

_ports = engine_harness.PortRange(25500, 25899)
CLUSTER = ClusterSpec(password='cluster "secret" \\ ключ', node_timeout_ms=2000)
APP = "app"
APP_PASSWORD = "app-пароль"
KEYS = 2000
WAIT_S = 30.0


class Member(Server):
    """A ``Server`` on a port of this module's range, made a cluster node whose bus
    listens on another port of the range (as the control plane leases it)."""

    def __init__(self, engine: Engine, root: Path) -> None:
        super().__init__(engine, root, port=_ports.take())
        self.bus_port = _ports.take()
        assert isinstance(engine.lifecycle, RedisLifecycle)
        self.cluster = RedisClusterMember(engine.lifecycle)
        self.node_id = ""

    def stop(self) -> None:
        """The stop signal, sent again each second (Redis 7.0 ignores it while writing
        the initial AOF after a replica's full sync); SIGKILL after 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.process.send_signal(self.engine.lifecycle.stop_signal)
            try:
                self.process.wait(timeout=1)
                return
            except subprocess.TimeoutExpired:
                continue
        self.kill()

    def state(self) -> ClusterState:
        return self.cluster.cluster_state(self.paths, self.spec)

    def peer(self) -> Peer:
        return Peer(host="127.0.0.1", port=self.spec.port, node_id=self.node_id)


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


workspace = engine_harness.workspace_fixture("cfrcl-")
engine = engine_harness.engine_fixture(build_engine, "coffer")


@pytest.fixture(scope="module")
def new_member(workspace: Path, engine: Engine) -> Iterator[Callable[[str], Member]]:
    """Factory of running, opened cluster members with the tenant user; all stopped and
    their accounts removed at the end, whatever happened."""
    fleet = engine_harness.Fleet(cleanup_steps)

    def make(name: str) -> Member:
        member = fleet.add(Member(engine, workspace / name))
        member.engine.lifecycle.prepare(member.paths, member.spec)
        restart = member.cluster.enable_cluster(member.paths, member.spec, CLUSTER, member.bus_port)
        assert restart is False
        member.engine.lifecycle.configure(member.paths, member.spec)
        member.start()
        member.engine.lifecycle.bootstrap(member.paths, member.spec)
        member.node_id = member.cluster.open_node(member.paths, member.spec)
        member.admin.create_users([UserSpec(name=APP, password=APP_PASSWORD)])
        return member

    yield make
    fleet.close()


def cluster_client(member: Member) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[ClientNode("127.0.0.1", member.spec.port)],
        username=APP,
        password=APP_PASSWORD,
        decode_responses=False,
        protocol=2,
        socket_timeout=5,
        driver_info=None,
    )


def move(moving: SlotMove, members: dict[str, Member]) -> int:
    """One move as the control plane orders it; the number of keys moved."""
    source, target = members[moving.source], members[moving.target]
    target.cluster.import_slots(target.paths, target.spec, source.node_id, moving.slots)
    moved = source.cluster.migrate_slots(source.paths, source.spec, target.peer(), moving.slots)
    masters = [target, source] + [
        m for m in members.values() if m not in (source, target) and m.state().node.role == "master"
    ]
    for member in masters:
        member.cluster.assign_slots(member.paths, member.spec, moving.slots, target.node_id)
    return moved


def test_cluster_forms_grows_and_shrinks(new_member: Callable[[str], Member]) -> None:
    masters = [new_member(f"m{i}") for i in range(3)]
    replicas = [new_member(f"r{i}") for i in range(3)]
    everyone = masters + replicas
    first = masters[0]
    for other in everyone[1:]:
        first.cluster.meet(first.paths, first.spec, "127.0.0.1", other.spec.port, other.bus_port)
    wait_for(
        "every member to know all 6", lambda: all(m.state().known_nodes == 6 for m in everyone)
    )
    for member in everyone:  # each bus listens on its own leased port
        socket.create_connection(("127.0.0.1", member.bus_port), timeout=5).close()

    for master, slots in zip(masters, _thirds(), strict=True):
        master.cluster.add_slots(master.paths, master.spec, slot_ranges(slots))
        master.cluster.add_slots(master.paths, master.spec, slot_ranges(slots))  # idempotent
    for replica, master in zip(replicas, masters, strict=True):
        replica.cluster.replicate(replica.paths, replica.spec, master.node_id)
    wait_for("cluster_state ok on every member", lambda: all(_healthy(m) for m in everyone))
    for replica, master in zip(replicas, masters, strict=True):
        seen = replica.state().node
        assert seen.role is NodeRole.REPLICA and seen.master_id == master.node_id
    state = first.state()
    assert state.slots_assigned == state.slots_ok == SLOT_COUNT
    assert sorted(len(slots) for slots in state.owners().values()) == [5461, 5461, 5462]

    written = {f"key:{i}".encode(): f"value {i}".encode() for i in range(KEYS)}
    written[b"\xff\xfe binary key"] = b"\x00\x01"
    with cluster_client(first) as app:
        for key, value in written.items():
            app.set(key, value)
    per_master = [_dbsize(m) for m in masters]
    assert sum(per_master) == len(written) and min(per_master) > len(written) // 5

    # grow: a fourth master takes a quarter of the slots with their keys
    fourth = new_member("m3")
    first.cluster.meet(first.paths, first.spec, "127.0.0.1", fourth.spec.port, fourth.bus_port)
    wait_for(
        "every member to know all 7 and the new one to see the cluster ok",
        lambda: all(m.state().known_nodes == 7 and _healthy(m) for m in [*everyone, fourth]),
    )
    members = {m.node_id: m for m in [*masters, fourth]}
    plan = plan_rebalance(first.state().owners(), list(members))
    assert {step.target for step in plan} == {fourth.node_id}
    moved = sum(move(step, members) for step in plan)
    assert moved > 0
    wait_for(
        "the new layout on every member",
        lambda: all(_quarters(m.state()) for m in [*everyone, fourth]),
    )
    assert _dbsize(fourth) == moved
    assert sum(_dbsize(m) for m in members.values()) == len(written)
    _assert_readable(fourth, written)

    # shrink: its slots go back, it is forgotten, nothing is lost
    back = plan_rebalance(first.state().owners(), [m.node_id for m in masters])
    assert {step.source for step in back} == {fourth.node_id}
    assert sum(move(step, members) for step in back) == moved
    assert _dbsize(fourth) == 0
    for member in everyone:
        member.cluster.forget(member.paths, member.spec, fourth.node_id)
        member.cluster.forget(member.paths, member.spec, fourth.node_id)  # idempotent
    fourth.stop()
    wait_for(
        "six known nodes and ok",
        lambda: all(m.state().known_nodes == 6 and _healthy(m) for m in everyone),
    )
    assert sum(_dbsize(m) for m in masters) == len(written)
    _assert_readable(masters[1], written)


def test_bad_input_is_refused_and_changes_nothing(new_member: Callable[[str], Member]) -> None:
    member = new_member("bad")
    paths, spec, cluster = member.paths, member.spec, member.cluster
    before = cluster_path(paths).read_bytes()
    with pytest.raises(BadRequest, match="node timeout"):
        cluster.enable_cluster(paths, spec, ClusterSpec(password="x", node_timeout_ms=1))
    with pytest.raises(BadRequest, match="control characters"):
        cluster.enable_cluster(paths, spec, ClusterSpec(password="a\nb"))
    with pytest.raises(BadRequest, match="is the client port"):
        cluster.enable_cluster(paths, spec, CLUSTER, spec.port)
    with pytest.raises(BadRequest, match="bus port 70000 is outside"):
        cluster.enable_cluster(paths, spec, CLUSTER, 70000)
    assert cluster_path(paths).read_bytes() == before
    with pytest.raises(BadRequest, match="node id"):
        cluster.replicate(paths, spec, "not-a-node")
    with pytest.raises(BadRequest, match="IP address"):
        cluster.meet(paths, spec, "example.invalid", 7000)
    with pytest.raises(BadRequest, match="bus port 65536 is outside"):
        cluster.meet(paths, spec, "127.0.0.1", 7000, 65536)
    with pytest.raises(BadRequest, match="bus port 65536 is outside"):
        cluster.meet(paths, spec, "127.0.0.1", 55536)  # the default bus, port + 10000
    with pytest.raises(BadRequest, match="slot range"):
        cluster.add_slots(paths, spec, [(0, SLOT_COUNT)])
    state = member.state()
    assert state.node.slots == () and state.known_nodes == 1
    # tenant users cannot administer the cluster
    with (
        member.tcp(APP, APP_PASSWORD) as app,
        pytest.raises(redis.ResponseError, match="permissions"),
    ):
        app.execute_command("CLUSTER", "ADDSLOTS", "1")


def test_plan_rebalance_moves_the_fewest_slots_evenly() -> None:
    a, b, c, d = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
    current = dict(zip((a, b, c), _thirds(), strict=True))
    grow = plan_rebalance(current, [a, b, c, d])
    assert {step.target for step in grow} == {d}
    assert sum(len(step.slots) for step in grow) == SLOT_COUNT // 4
    after = _apply(current, grow)
    assert sorted(len(slots) for slots in after.values()) == [4096] * 4
    assert plan_rebalance(after, [a, b, c, d]) == []
    shrink = plan_rebalance(after, [a, b, c])
    assert {step.source for step in shrink} == {d}
    final = _apply(after, shrink)
    assert set(final[d]) == set() and sorted(len(s) for s in final.values())[1:] == [
        5461,
        5461,
        5462,
    ]
    uneven = plan_rebalance({a: range(SLOT_COUNT)}, [a, b])
    assert uneven == [SlotMove(source=a, target=b, slots=tuple(range(8192, SLOT_COUNT)))]
    with pytest.raises(BadRequest, match="exactly once"):
        plan_rebalance({a: range(100)}, [a])
    with pytest.raises(BadRequest, match="twice"):
        plan_rebalance(current, [a, a])
    with pytest.raises(BadRequest, match="at least one"):
        plan_rebalance(current, [])


def _thirds() -> list[list[int]]:
    return [list(range(0, 5461)), list(range(5461, 10922)), list(range(10922, SLOT_COUNT))]


def _apply(current: dict[str, list[int]], plan: list[SlotMove]) -> dict[str, list[int]]:
    after = {node: list(slots) for node, slots in current.items()}
    for step in plan:
        after[step.source] = [s for s in after[step.source] if s not in set(step.slots)]
        after.setdefault(step.target, []).extend(step.slots)
    return after


def _healthy(member: Member) -> bool:
    state = member.state()
    return state.health is ClusterHealth.OK and state.slots_ok == SLOT_COUNT


def _quarters(state: ClusterState) -> bool:
    counts = sorted(len(slots) for slots in state.owners().values() if slots)
    return counts == [4096] * 4 and state.health is ClusterHealth.OK


def _dbsize(member: Member) -> int:
    secret = (member.paths.root / "coffer-admin.secret").read_text().strip()
    with redis.Redis(
        unix_socket_path=str(member.paths.run_dir / "redis.sock"),
        username="coffer-admin",
        password=secret,
        protocol=2,
        driver_info=None,
    ) as admin:
        return int(admin.dbsize())


def _assert_readable(entry: Member, written: dict[bytes, bytes]) -> None:
    with cluster_client(entry) as app:
        found = {key: app.get(key) for key in written}
    assert found == written
