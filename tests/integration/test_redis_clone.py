"""Instant clones of Redis instances (``RedisLifecycle.adopt_copy``) against real Redis 7.0.

A clone is driven as the agent drives it: a copy of the source's whole root taken while
the source runs, handed over to the clone's own OS account, then ``adopt_copy``,
``configure``, start and ``bootstrap``, as for a restored instance.

The agent copies a frozen XFS volume (``xfs_freeze``, then a reflink copy of its image):
a crash-consistent copy, as after a power loss. There is no XFS volume here, so the
tests copy with ``cp -a --reflink=auto`` once the source's append-only file holds every
acknowledged write and no AOF rewrite runs (Redis writes the AOF before it replies, and
fsyncs it within a second); the copy thus equals what a freeze would have captured.

Ports 24900-25099; every server is stopped by a finalizer, then the accounts and the
``/tmp/cfrdc-*`` workspace are removed.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from coffer.contracts.engine import UserSpec
from coffer.engines.base import Engine
from coffer.engines.redis import build_engine
from coffer.engines.redis.catalog import REPLICATION_USER
from coffer.errors import EngineError
from tests.integration.test_redis_engine import SERVER, cleanup_steps, client
from tests.integration.test_redis_replication import (
    APP,
    APP_PASSWORD,
    REPL_PASSWORD,
    has,
    streaming,
    wait_for,
)
from tests.integration.test_redis_replication import Node as ReplicationNode
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks("redis_clone", SERVER, "redis-server is not installed")

free_port = engine_harness.PortRange(24900, 25099).take

#: logical databases the tests put keys in
DATABASES = (0, 1, 2)
Contents = dict[int, dict[str, object]]


class Node(ReplicationNode):
    """A replication test node on a port of this module's range."""

    def __init__(self, engine: Engine, root: Path) -> None:
        super().__init__(engine, root, port=free_port())

    def admin_info(self, section: str) -> dict[str, object]:
        secret = (self.paths.root / "coffer-admin.secret").read_text().strip()
        with redis.Redis(
            unix_socket_path=str(self.paths.run_dir / "redis.sock"),
            username="coffer-admin",
            password=secret,
            decode_responses=True,
            protocol=2,
            driver_info=None,
        ) as admin:
            found: dict[str, object] = admin.info(section)
        return found

    def contents(self) -> Contents:
        """Every key of ``DATABASES`` with its value, read as the tenant user."""
        found: Contents = {}
        for db in DATABASES:
            with client(self.spec.port, APP, APP_PASSWORD, db=db) as conn:
                found[db] = {key: _value(conn, key) for key in conn.scan_iter(count=1000)}
        return found


def _value(conn: redis.Redis, key: str) -> object:
    kind = conn.type(key)
    if kind == "string":
        return conn.get(key)
    if kind == "list":
        return conn.lrange(key, 0, -1)
    if kind == "hash":
        return conn.hgetall(key)
    if kind == "set":
        return sorted(conn.smembers(key))
    if kind == "zset":
        return conn.zrange(key, 0, -1, withscores=True)
    raise AssertionError(f"unexpected type {kind} of {key}")


def settle(node: Node) -> None:
    """Wait until ``node``'s append-only file holds every acknowledged write and no sync,
    load or AOF rewrite runs (what a filesystem freeze would capture of it)."""

    def settled() -> bool:
        found = {**node.admin_info("persistence"), **node.admin_info("replication")}
        busy = ("loading", "aof_rewrite_in_progress", "aof_rewrite_scheduled")
        pending = ("aof_buffer_length", "aof_pending_bio_fsync", "master_sync_in_progress")
        return all(int(str(found.get(name, 0))) == 0 for name in (*busy, *pending))

    wait_for("the append-only file to settle", settled)


def copy_root(source: Node, clone: Node) -> None:
    """Copy ``source``'s running root to ``clone``'s and hand the source account's files
    to the clone's account, as the agent does (root's files stay root's)."""
    settle(source)
    subprocess.run(
        ["cp", "-a", "--reflink=auto", str(source.paths.root), str(clone.paths.root)],
        check=True,
        capture_output=True,
    )
    source_uid = source.paths.data_dir.stat().st_uid
    clone_uid = clone.paths.data_dir.stat().st_uid  # still the source's: not handed over
    assert clone_uid == source_uid
    account = pwd.getpwnam(clone.os_user)
    for directory, dirs, files in os.walk(clone.paths.root):
        for name in (*dirs, *files):
            path = os.path.join(directory, name)
            if os.lstat(path).st_uid == source_uid:
                os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)


def adopt_and_start(clone: Node) -> None:
    lifecycle = clone.engine.lifecycle
    lifecycle.adopt_copy(clone.paths, clone.spec)
    lifecycle.configure(clone.paths, clone.spec)
    clone.start_new()


workspace = engine_harness.workspace_fixture("cfrdc-")
engine = engine_harness.engine_fixture(build_engine, "coffer")


@pytest.fixture(scope="module")
def fleet() -> Iterator[engine_harness.Fleet[Node]]:
    """Every node of the module; all stopped and their accounts removed at the end."""
    nodes: engine_harness.Fleet[Node] = engine_harness.Fleet(cleanup_steps)
    yield nodes
    nodes.close()


@pytest.fixture(scope="module")
def new_node(
    workspace: Path, engine: Engine, fleet: engine_harness.Fleet[Node]
) -> Callable[[str], Node]:
    """Factory of running, bootstrapped nodes with the tenant user ``app``."""

    def make(name: str) -> Node:
        node = fleet.add(Node(engine, workspace / name))
        node.prepare_and_configure()
        node.start_new()
        node.admin.create_users([UserSpec(name=APP, password=APP_PASSWORD)])
        return node

    return make


@pytest.fixture(scope="module")
def blank(
    workspace: Path, engine: Engine, fleet: engine_harness.Fleet[Node]
) -> Callable[[str], Node]:
    """Factory of nodes with an account and nothing on disk: clones to be."""
    return lambda name: fleet.add(Node(engine, workspace / name))


def fill(node: Node) -> None:
    """Keys of every kind in several logical databases, one with a TTL."""
    with client(node.spec.port, APP, APP_PASSWORD, db=0) as conn:
        conn.set("greeting", "hello, клон")
        conn.rpush("list", *[str(n) for n in range(200)])
        conn.hset("hash", mapping={f"field{n}": str(n) for n in range(50)})
        conn.set("expiring", "soon", ex=3600)
    with client(node.spec.port, APP, APP_PASSWORD, db=1) as conn:
        conn.sadd("set", *[f"member{n}" for n in range(30)])
    with client(node.spec.port, APP, APP_PASSWORD, db=2) as conn:
        conn.zadd("zset", {f"z{n}": float(n) / 4 for n in range(40)})


def test_clone_of_a_running_primary(
    new_node: Callable[[str], Node], blank: Callable[[str], Node]
) -> None:
    source = new_node("src")
    fill(source)
    root_password = source.admin.enable_root("")
    source.upstream()  # a source of replicas: it has the replication account
    source_secret = (source.paths.root / "coffer-admin.secret").read_text()
    snapshot = source.contents()
    clone = blank("clone")
    copy_root(source, clone)
    with source.app() as conn:
        conn.set("after-copy", "on the source only")

    root, data = clone.paths.root, clone.paths.data_dir
    # what a save, an AOF rewrite, an ACL SAVE or an atomic write in progress leaves
    leftovers = [
        data / "temp-4242.rdb",
        data / "appendonlydir" / "temp-rewriteaof-bg-4242.aof",
        data / "users.acl.tmp-4242-1700000000",
        root / ".coffer-replication.json.coffer-tmp",
    ]
    for leftover in leftovers:
        leftover.write_text("half-written\n")

    lifecycle = clone.engine.lifecycle
    lifecycle.adopt_copy(clone.paths, clone.spec)
    lifecycle.adopt_copy(clone.paths, clone.spec)  # idempotent
    assert [leftover for leftover in leftovers if leftover.exists()] == []
    for gone in ("coffer-replication.json", "redis.conf", "engine.log"):
        assert not (root / gone).exists(), gone
    assert list(clone.paths.run_dir.iterdir()) == []  # the source's socket and pid
    secret = root / "coffer-admin.secret"
    info = secret.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600)
    assert secret.read_text() != source_secret
    acl = (data / "users.acl").read_text()
    assert f"user {APP} " in acl and "user root " in acl
    assert REPLICATION_USER not in acl

    lifecycle.configure(clone.paths, clone.spec)
    clone.start_new()

    assert clone.contents() == snapshot
    with client(clone.spec.port, APP, APP_PASSWORD) as conn:
        assert conn.get("after-copy") is None
        assert 0 < conn.ttl("expiring") <= 3600
        conn.set("on-the-clone", "1")  # writable
        assert conn.get("on-the-clone") == "1"
    with clone.tcp("root", root_password) as conn:
        assert conn.get("greeting") == "hello, клон"
    with pytest.raises(redis.AuthenticationError):
        clone.tcp(REPLICATION_USER, REPL_PASSWORD).ping()
    state = clone.state()
    assert (state.role, state.detail) == ("primary", "primary with 0 replica(s) connected")
    clone_ids = clone.admin_info("replication")
    assert clone_ids["master_replid"] != source.admin_info("replication")["master_replid"]

    with source.app() as conn:  # the source is untouched and still serving
        assert conn.get("on-the-clone") is None
        assert conn.get("after-copy") == "on the source only"
        conn.set("source-still-writable", "1")
    with source.tcp(REPLICATION_USER, REPL_PASSWORD) as conn:
        assert conn.ping()
    assert (source.paths.root / "coffer-admin.secret").read_text() == source_secret


def test_clones_of_a_running_replica_and_of_a_fenced_primary(
    new_node: Callable[[str], Node], blank: Callable[[str], Node]
) -> None:
    primary, replica = new_node("primary"), new_node("replica")
    fill(primary)
    replica.follow(primary)
    wait_for("the replica to stream", streaming(replica))
    wait_for("the data to reach the replica", has(replica, "greeting", "hello, клон"))
    snapshot = replica.contents()
    replica_clone = blank("replica-clone")
    copy_root(replica, replica_clone)
    primary.replication.fence(primary.paths, primary.spec)
    primary_clone = blank("primary-clone")
    copy_root(primary, primary_clone)
    assert primary.contents() == snapshot

    for clone in (replica_clone, primary_clone):
        adopt_and_start(clone)
        assert clone.contents() == snapshot
        state = clone.state()
        assert (state.role, state.detail) == ("primary", "primary with 0 replica(s) connected")
        assert clone.admin_info("replication")["role"] == "master"
        assert "replicaof" not in (clone.paths.root / "redis.conf").read_text()
        assert "min-replicas-to-write 0\n" in (clone.paths.root / "redis.conf").read_text()
        with clone.app() as conn:
            conn.set(f"written-on-{clone.paths.root.name}", "1")
            assert conn.get(f"written-on-{clone.paths.root.name}") == "1"

    # the sources go on as they were: the primary fenced and followed, the replica following
    assert "fenced" in primary.state().detail
    assert int(str(primary.admin_info("replication")["connected_slaves"])) == 1
    with primary.app() as conn:
        assert conn.get("greeting") == "hello, клон"
        with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
            conn.set("after-fence", "1")
    assert replica.state().role == "replica"
    wait_for("the replica to stream on", streaming(replica))
    with replica.app() as conn:
        assert conn.get("written-on-replica-clone") is None


def test_adopt_copy_refuses_what_is_no_redis_copy_and_changes_nothing(
    engine: Engine, new_node: Callable[[str], Node], blank: Callable[[str], Node]
) -> None:
    lifecycle = engine.lifecycle
    missing = blank("missing")
    with pytest.raises(EngineError, match="does not exist"):
        lifecycle.adopt_copy(missing.paths, missing.spec)
    assert not missing.paths.root.exists()

    foreign = blank("foreign")  # a PostgreSQL data directory, say
    foreign.paths.data_dir.mkdir(parents=True)
    (foreign.paths.data_dir / "PG_VERSION").write_text("15\n")
    (foreign.paths.root / "engine.log").write_text("someone else's log\n")
    with pytest.raises(EngineError, match="not a Redis data directory"):
        lifecycle.adopt_copy(foreign.paths, foreign.spec)
    assert (foreign.paths.root / "engine.log").read_text() == "someone else's log\n"

    source = new_node("running")
    secret = (source.paths.root / "coffer-admin.secret").read_text()
    with pytest.raises(EngineError, match="runs on"):
        lifecycle.adopt_copy(source.paths, source.spec)
    assert (source.paths.root / "coffer-admin.secret").read_text() == secret
    assert (source.paths.root / "redis.conf").exists()
    with source.app() as conn:
        assert conn.ping()

    unowned = blank("not-handed-over")
    settle(source)
    subprocess.run(
        ["cp", "-a", str(source.paths.root), str(unowned.paths.root)],
        check=True,
        capture_output=True,
    )
    with pytest.raises(EngineError, match="hand the copied files over"):
        lifecycle.adopt_copy(unowned.paths, unowned.spec)
    assert (unowned.paths.root / "redis.conf").exists()
    assert (unowned.paths.root / "coffer-admin.secret").read_text() == secret
