"""Redis replication against real Redis 7.0 servers, each run as its own OS account.

Driven as the agent drives it: ``open_source`` on the running source; the replica is
prepared empty, configured, started and bootstrapped like a new instance, then ``follow``
runs on it while it runs ("engine" seeding: Redis copies the data). Most tests share a
module-scoped source and replica and leave them as they found them (any test order
works: xdist groups are not honoured with pytest 9.2); the switchover (fence, promote,
re-point the other replica, the old primary follows the new one) and the follow of a
stopped instance build their own servers. Every server is stopped by a finalizer, then
the accounts and the ``/tmp/cfrdr-*`` workspace are removed. Ports: 24200-24499.
"""

from __future__ import annotations

import io
import stat
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from coffer.contracts.engine import UserSpec
from coffer.engines.base import Engine, ReplicaState, Replication, Upstream
from coffer.engines.redis import build_engine
from coffer.engines.redis.catalog import CATALOG, REPLICATION_USER
from coffer.errors import BadRequest, EngineError
from tests.integration.test_redis_engine import (
    SERVER,
    Server,
    cleanup_steps,
)
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks(
    "redis_replication", SERVER, "redis-server is not installed"
)

free_port = engine_harness.PortRange(24200, 24499).take

APP = "app"
APP_PASSWORD = "app-пароль"
REPL_PASSWORD = 'repl "secret" \\ ключ'
WAIT_S = 30.0


class Node(Server):
    """A ``Server`` on a port of this module's range."""

    def __init__(self, engine: Engine, root: Path, port: int | None = None) -> None:
        super().__init__(engine, root, port=free_port() if port is None else port)

    @property
    def replication(self) -> Replication:
        assert self.engine.replication is not None
        return self.engine.replication

    def state(self) -> ReplicaState:
        return self.replication.state(self.paths, self.spec)

    def upstream(self) -> Upstream:
        """This node as an upstream, opened for one more replica."""
        facts = self.replication.open_source(
            self.paths, self.spec, uuid.uuid4().hex, REPLICATION_USER, REPL_PASSWORD
        )
        return Upstream(
            host="127.0.0.1",
            port=self.spec.port,
            user=REPLICATION_USER,
            password=REPL_PASSWORD,
            facts=facts,
        )

    def follow(self, upstream: Node) -> None:
        restart = self.replication.follow(self.paths, self.spec, upstream.upstream())
        assert restart is False

    def app(self) -> redis.Redis:
        return self.tcp(APP, APP_PASSWORD)

    def stop(self) -> None:
        """Stop with the engine's stop signal, sent again each second: Redis 7.0 ignores
        it while it writes the initial AOF after a replica's full sync ("Writing initial
        AOF, can't exit."), and does not retry by itself. SIGKILL after 30 s."""
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

    def start_new(self) -> None:
        self.start()
        self.engine.lifecycle.bootstrap(self.paths, self.spec)

    def restart(self) -> None:
        self.stop()
        self.engine.lifecycle.configure(self.paths, self.spec)
        self.start_new()

    def stats(self) -> dict[str, int]:
        """Full and partial resyncs this node served as an upstream."""
        secret = (self.paths.root / "coffer-admin.secret").read_text().strip()
        with redis.Redis(
            unix_socket_path=str(self.paths.run_dir / "redis.sock"),
            username="coffer-admin",
            password=secret,
            decode_responses=True,
            protocol=2,
            driver_info=None,
        ) as admin:
            found = admin.info("stats")
        return {name: int(found[name]) for name in ("sync_full", "sync_partial_ok")}


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def has(node: Node, key: str, value: str) -> Callable[[], bool]:
    def check() -> bool:
        with node.app() as conn:
            return bool(conn.get(key) == value)

    return check


def reached(node: Node, position: int) -> Callable[[], bool]:
    return lambda: node.state().position >= position


def streaming(node: Node) -> Callable[[], bool]:
    return lambda: node.state().streaming


workspace = engine_harness.workspace_fixture("cfrdr-")
engine = engine_harness.engine_fixture(build_engine, "coffer")


@pytest.fixture(scope="module")
def new_node(workspace: Path, engine: Engine) -> Iterator[Callable[[str], Node]]:
    """Factory of running, bootstrapped nodes with the tenant user ``app`` (ACL users
    are per instance, never replicated); at the end all are stopped and their accounts
    removed, whatever happened."""
    fleet: engine_harness.Fleet[Node] = engine_harness.Fleet(cleanup_steps)

    def make(name: str) -> Node:
        node = fleet.add(Node(engine, workspace / name))
        node.prepare_and_configure()
        node.start_new()
        node.admin.create_users([UserSpec(name=APP, password=APP_PASSWORD)])
        return node

    yield make
    fleet.close()


@pytest.fixture(scope="module")
def source(new_node: Callable[[str], Node]) -> Node:
    node = new_node("source")
    with node.app() as conn:
        conn.set("seed", "before the replica")
        conn.rpush("list", *[str(n) for n in range(100)])
    return node


@pytest.fixture(scope="module")
def replica(new_node: Callable[[str], Node], source: Node) -> Node:
    node = new_node("replica")
    node.follow(source)
    wait_for("the replica to stream", streaming(node))
    return node


def test_catalog_seeds_replicas_by_the_engine(engine: Engine) -> None:
    assert CATALOG.replica_seed == "engine"
    assert engine.replication is not None


def test_data_propagates_and_state_shows_progress(source: Node, replica: Node) -> None:
    with replica.app() as conn:
        assert conn.get("seed") == "before the replica"
        assert conn.llen("list") == 100
    before = replica.state()
    assert (before.role, before.streaming) == ("replica", True)
    assert before.lag_s is not None and before.lag_s >= 0
    assert f"127.0.0.1:{source.spec.port}" in before.detail
    primary = source.state()
    assert (primary.role, primary.streaming, primary.lag_s) == ("primary", False, None)
    with source.app() as conn:
        conn.set("later", "x" * 1000)
    wait_for("the write to reach the replica", has(replica, "later", "x" * 1000))
    wait_for("the replica's position to grow", lambda: replica.state().position > before.position)
    assert source.state().position >= replica.state().position > before.position


def test_replica_refuses_tenant_and_root_writes_and_serves_reads(
    source: Node, replica: Node
) -> None:
    with replica.app() as conn:
        with pytest.raises(redis.ReadOnlyError):
            conn.set("seed", "overwritten")
        with pytest.raises(redis.ReadOnlyError):
            conn.delete("list")
        assert conn.get("seed") == "before the replica"
    root_password = replica.admin.enable_root("")
    with replica.tcp("root", root_password) as conn, pytest.raises(redis.ReadOnlyError):
        conn.set("by-root", "1")
    with replica.tcp("root", root_password) as conn, pytest.raises(redis.ResponseError):
        conn.execute_command("REPLICAOF", "NO", "ONE")  # root cannot promote either
    assert replica.state().role == "replica"


def test_follow_keeps_the_password_private_and_survives_configure(
    source: Node, replica: Node
) -> None:
    marker = replica.paths.root / "coffer-replication.json"
    info = marker.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o600)
    conf_file = replica.paths.root / "redis.conf"
    replica.engine.lifecycle.configure(replica.paths, replica.spec)
    conf = conf_file.read_text()
    assert f"replicaof 127.0.0.1 {source.spec.port}\n" in conf
    assert f"masteruser {REPLICATION_USER}\n" in conf
    assert "masterauth " in conf and "ключ" in conf  # the engine's own 0600 file
    assert conf_file.owner() == replica.os_user and stat.S_IMODE(conf_file.stat().st_mode) == 0o600
    assert "replica-read-only yes\n" in conf and "repl-diskless-sync-delay 0\n" in conf
    for node in (source, replica):
        assert "ключ" not in node.paths.log_file.read_text(errors="replace")
        assert "ключ" not in (node.paths.data_dir / "users.acl").read_text()
        assert "ключ" not in node.spec.model_dump_json()
        for file in node.paths.data_dir.rglob("*"):
            if file.is_file():
                assert "ключ".encode() not in file.read_bytes(), file
    assert "ключ" not in (source.paths.root / "redis.conf").read_text()
    with replica.app() as conn, pytest.raises(redis.ResponseError):
        conn.config_get("masterauth")


def test_the_replication_user_has_replication_commands_only(source: Node) -> None:
    source.upstream()  # opens the source
    with source.tcp(REPLICATION_USER, REPL_PASSWORD) as conn:
        assert conn.ping()
        for command in (("GET", "seed"), ("SET", "k", "v"), ("CONFIG", "GET", "*")):
            with pytest.raises(redis.ResponseError, match="no permissions"):
                conn.execute_command(*command)
    assert REPLICATION_USER not in [user.name for user in source.admin.list_users()]
    with io.BytesIO() as sink:
        source.engine.backups.backup(source.paths, source.spec, sink)
        sink.seek(0)
        with tarfile.open(fileobj=sink) as archive:
            member = archive.extractfile("users.acl")
            assert member is not None
            users = member.read().decode()
    assert f"user {APP} " in users
    assert REPLICATION_USER not in users  # a restored instance gets no replication account


def test_volume_guard_holds_with_replicas_and_replicas_keep_applying(
    source: Node, replica: Node
) -> None:
    lifecycle = source.engine.lifecycle
    blocked_source = source.spec.model_copy(update={"read_only": True})
    blocked_replica = replica.spec.model_copy(update={"read_only": True})
    try:
        lifecycle.apply_parameters(replica.paths, blocked_replica)
        with source.app() as conn:
            conn.set("guarded-replica", "applied")
        wait_for("a read-only replica to apply", has(replica, "guarded-replica", "applied"))
        lifecycle.apply_parameters(source.paths, blocked_source)
        assert source.state().detail == "primary with 1 replica(s) connected"
        with source.app() as conn:
            with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
                conn.set("refused", "1")
            assert conn.get("guarded-replica") == "applied"
        assert replica.state().streaming
    finally:
        lifecycle.apply_parameters(source.paths, source.spec)
        lifecycle.apply_parameters(replica.paths, replica.spec)
    with source.app() as conn:
        conn.set("unguarded", "1")
    wait_for("writes after the guard", has(replica, "unguarded", "1"))


def test_bad_input_is_refused_and_changes_nothing(source: Node, replica: Node) -> None:
    replication = replica.replication
    files = [replica.paths.root / name for name in ("coffer-replication.json", "redis.conf")]
    before = [file.read_text() for file in files]
    good = Upstream(host="127.0.0.1", port=source.spec.port, user=REPLICATION_USER, password="p")
    bad = [
        (replace(good, host="bad host;"), "upstream host"),
        (replace(good, port=0), "upstream port"),
        (replace(good, user=APP), "replication account"),
        (replace(good, password="a\nreplicaof x 1"), "password"),
        (replace(good, port=replica.spec.port), "itself"),
    ]
    for upstream, message in bad:
        with pytest.raises(BadRequest, match=message) as caught:
            replication.follow(replica.paths, replica.spec, upstream)
        assert "replicaof x" not in str(caught.value)
    assert [file.read_text() for file in files] == before
    acl_before = source.admin.list_users()
    for user, password in ((APP, "x"), ("coffer-admin", "x"), (REPLICATION_USER, "")):
        with pytest.raises(BadRequest):
            source.replication.open_source(source.paths, source.spec, "r", user, password)
    assert source.admin.list_users() == acl_before
    with source.app() as conn:
        assert conn.ping()
    assert replica.state().streaming


def test_open_source_again_and_close_source_keep_replicas_streaming(
    source: Node, replica: Node
) -> None:
    syncs = source.stats()
    source.upstream()  # idempotent: the account is set again with the same password
    source.replication.close_source(source.paths, source.spec, "some-replica")  # a no-op
    with source.tcp(REPLICATION_USER, REPL_PASSWORD) as conn:
        assert conn.ping()
    with source.app() as conn:
        conn.set("after-close", "1")
    wait_for("writes after close_source", has(replica, "after-close", "1"))
    assert source.stats()["sync_full"] == syncs["sync_full"]


def test_a_restarted_replica_keeps_following(source: Node, replica: Node) -> None:
    replica.restart()
    assert replica.state().role == "replica"
    wait_for("the restarted replica to stream", streaming(replica))
    with source.app() as conn:
        conn.set("after-restart", "1")
    wait_for("writes after the restart", has(replica, "after-restart", "1"))
    with replica.app() as conn, pytest.raises(redis.ReadOnlyError):
        conn.set("after-restart", "2")


def test_switchover_fence_promote_repoint_and_old_primary_follows(
    new_node: Callable[[str], Node],
) -> None:
    old, new, other = new_node("old"), new_node("new"), new_node("other")
    for node in (new, other):
        node.follow(old)
    with old.app() as conn:
        conn.set("last-on-old", "1")
    fenced_at = old.replication.fence(old.paths, old.spec)
    assert old.replication.fence(old.paths, old.spec) >= fenced_at  # idempotent
    old.restart()  # the fence holds through configure, a restart and live parameters
    old.engine.lifecycle.apply_parameters(old.paths, old.spec)
    assert "fenced" in old.state().detail
    with old.app() as conn:
        assert conn.get("last-on-old") == "1"
        with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
            conn.set("after-fence", "1")
        pipe = conn.pipeline(transaction=True)
        pipe.set("in-a-transaction", "1")
        with pytest.raises(redis.ResponseError):
            pipe.execute()
    for node in (new, other):
        wait_for("replicas to stream again", streaming(node))
        wait_for("replicas to reach the fence", reached(node, fenced_at))
        with node.app() as conn:
            assert conn.get("last-on-old") == "1"
            assert conn.get("after-fence") is None
    conf_before = (other.paths.root / "redis.conf").read_text()
    assert other.replication.fence(other.paths, other.spec) >= 0  # a replica: left as it is
    assert (other.paths.root / "redis.conf").read_text() == conf_before

    new.replication.promote(new.paths, new.spec)
    promoted = new.state()
    assert promoted.role == "primary"
    assert promoted.position >= fenced_at
    new.replication.promote(new.paths, new.spec)  # a primary stays as it is
    assert "replicaof" not in (new.paths.root / "redis.conf").read_text()
    with new.app() as conn:
        conn.set("on-new", "1")
        assert conn.get("last-on-old") == "1"

    other.follow(new)
    old.follow(new)
    for node in (other, old):
        wait_for("re-pointed nodes to stream", streaming(node))
        wait_for("the new primary's writes", has(node, "on-new", "1"))
        assert node.state().role == "replica"
        with node.app() as conn, pytest.raises(redis.ReadOnlyError):
            conn.set("on-old", "1")
    resyncs = new.stats()
    assert resyncs["sync_full"] + resyncs["sync_partial_ok"] >= 2  # partial or full
    assert "fenced" not in old.state().detail

    new.restart()  # the new primary stays one through a restart
    assert new.state().role == "primary"
    with new.app() as conn:
        conn.set("after-new-primary-restart", "3")
    for node in (other, old):
        wait_for("the restarted primary's writes", has(node, "after-new-primary-restart", "3"))


def test_promote_lifts_a_fence_on_a_primary(new_node: Callable[[str], Node]) -> None:
    node = new_node("fenced")
    node.replication.fence(node.paths, node.spec)
    with node.app() as conn, pytest.raises(redis.ResponseError, match="NOREPLICAS"):
        conn.set("fenced", "1")
    node.replication.promote(node.paths, node.spec)
    assert "fenced" not in node.state().detail
    with node.app() as conn:
        conn.set("unfenced", "1")
    node.restart()
    with node.app() as conn:
        conn.set("unfenced after a restart", "1")


def test_follow_on_a_stopped_engine_takes_effect_at_its_start(
    new_node: Callable[[str], Node],
) -> None:
    upstream, node = new_node("upstream"), new_node("stopped")
    with upstream.app() as conn:
        conn.set("for-the-stopped", "1")
    node.stop()
    assert node.replication.follow(node.paths, node.spec, upstream.upstream()) is False
    conf = (node.paths.root / "redis.conf").read_text()
    assert f"replicaof 127.0.0.1 {upstream.spec.port}\n" in conf
    with pytest.raises(EngineError, match="not reachable"):
        node.state()
    node.engine.lifecycle.configure(node.paths, node.spec)
    node.start_new()  # the first start follows what follow recorded
    wait_for("a replica followed while stopped to stream", streaming(node))
    wait_for("the upstream's data", has(node, "for-the-stopped", "1"))
