"""Redis backups against real Redis 7.0 servers, each run as its own OS account.

Backups go to plain files (the agent's sink compresses, encrypts and uploads; here a file
stands in for it) and are restored into other instances (other root, port and account),
driven as the agent drives them: ``restore`` instead of ``prepare``, then ``configure``,
start, ``bootstrap``. Every server is stopped by a finalizer, then the accounts and the
``/tmp/cfrb-*`` workspace are removed. Ports: 18600-18899.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
import redis

from coffer.contracts.engine import UserSpec
from coffer.engines.base import BackupOutcome, Engine
from coffer.engines.redis import build_engine
from coffer.engines.redis.catalog import CATALOG
from coffer.errors import EngineError, IntegrityError, NotImplementedByDatastore
from tests.integration.test_redis_engine import SERVER, Server, cleanup_steps, client
from tests.support import engine_harness

pytestmark = engine_harness.engine_marks("redis_backup", SERVER, "redis-server is not installed")

APP_PASSWORD = "Grüße-пароль-🔑"
ROOT_PASSWORD = "root-ключ"
#: what a restore may leave in an instance root when it fails: the prepare lock file
LOCK_ONLY = {".coffer-prepare.lock"}

State = dict[tuple[int, bytes], tuple[str, Any, bool]]


free_port = engine_harness.PortRange(18600, 18899).take


def binary(server: Server, user: str, password: str, db: int = 0) -> redis.Redis:
    """A binary-safe TCP client of ``server`` on logical database ``db``."""
    return client(server.spec.port, user, password, db=db, decode_responses=False, timeout_s=10)


def write_dataset(server: Server, tag: str) -> None:
    """Keys of every type in databases 0, 1 and 7: non-ASCII text, binary values, a key
    with a TTL."""
    with binary(server, "app", APP_PASSWORD) as conn:
        conn.set(f"text:ü:{tag}".encode(), f"Grüße, 世界 🚀 {tag}".encode())
        conn.set(f"bin:{tag}", bytes(range(256)) + tag.encode())
        conn.rpush(f"list:{tag}", b"\x00first", b"zwei", b"\xff\xfe")
        conn.hset(f"hash:{tag}", mapping={b"\x01field": b"\x02value", "näme": "wért"})
        conn.sadd(f"set:{tag}", b"a", b"\x00b", "ç".encode())
        conn.zadd(f"zset:{tag}", {b"one": 1.5, b"two": -2.25, b"drei": 3e10})
        conn.xadd(f"stream:{tag}", {b"k": b"v\x00", "ü": "ö"})
        conn.incrby(f"counter:{tag}", 41)
        conn.set(f"volatile:{tag}", b"expires later", ex=3600)
        pipe = conn.pipeline(transaction=False)
        for n in range(300):
            pipe.set(f"bulk:{tag}:{n}", os.urandom(64))
        pipe.execute()
    with binary(server, "app", APP_PASSWORD, db=1) as conn:
        conn.set(f"db1:{tag}", "eins")
        conn.lpush(f"db1list:{tag}", b"\x00", b"\x01")
    with binary(server, "app", APP_PASSWORD, db=7) as conn:
        conn.hset(f"db7:{tag}", b"f", bytes(range(255, -1, -1)))


def read_state(server: Server) -> State:
    """Every key of databases 0-15 with its type, full value and whether it has a TTL."""
    state: State = {}
    for db in range(16):
        with binary(server, "app", APP_PASSWORD, db=db) as conn:
            for key in conn.scan_iter(count=1000):
                kind = conn.type(key).decode()
                state[(db, key)] = (kind, _value(conn, kind, key), conn.pttl(key) > 0)
    return state


def _value(conn: redis.Redis, kind: str, key: bytes) -> Any:
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
    if kind == "stream":
        return conn.xrange(key)
    raise AssertionError(f"unexpected type {kind} of {key!r}")


def persistent_counts(state: State) -> dict[str, int]:
    """What ``counts`` must say for ``state``: keys without a TTL per database."""
    counts: dict[str, int] = {}
    for (db, _key), (_kind, _value, volatile) in state.items():
        if not volatile:
            counts[f"db{db}"] = counts.get(f"db{db}", 0) + 1
    return counts


class BreakingStream(io.RawIOBase):
    """The bytes of a backup file, then ``IntegrityError`` once ``limit`` bytes were read
    (as the agent's decrypting stream raises on a tampered backup)."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data = io.BytesIO(data)
        self._limit = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._data.tell() >= self._limit:
            raise IntegrityError("backup authentication failed: the data was tampered with")
        left = self._limit - self._data.tell()
        return self._data.read(left if size < 0 else min(size, left))


workspace = engine_harness.workspace_fixture("cfrb-")
engine = engine_harness.engine_fixture(build_engine, "coffer")


@pytest.fixture(scope="module")
def new_server(workspace: Path, engine: Engine) -> Iterator[Callable[..., Server]]:
    """Factory of servers (prepared and configured unless ``prepared=False``); at the
    end all are stopped and their accounts removed, whatever happened."""
    fleet = engine_harness.Fleet(cleanup_steps)

    def make(name: str, *, prepared: bool = True, **spec_values: Any) -> Server:
        server = fleet.add(Server(engine, workspace / name, port=free_port(), **spec_values))
        if prepared:
            server.prepare_and_configure()
        return server

    yield make
    fleet.close()


def start_new(server: Server) -> Server:
    server.start()
    server.engine.lifecycle.bootstrap(server.paths, server.spec)
    return server


def restore(new_server: Callable[..., Server], name: str, backup: Path) -> Server:
    """A new instance restored from ``backup``, configured, started and bootstrapped."""
    server = new_server(name, prepared=False)
    with open(backup, "rb") as stream:
        server.engine.backups.restore(server.paths, server.spec, [stream])
    server.engine.lifecycle.configure(server.paths, server.spec)
    return start_new(server)


def back_up(server: Server, target: Path) -> BackupOutcome:
    with open(target, "wb") as sink:
        return server.engine.backups.backup(server.paths, server.spec, sink)


@pytest.fixture(scope="module")
def source(new_server: Callable[..., Server]) -> Server:
    """A running instance with a tenant user and root, and the first dataset."""
    server = start_new(new_server("source"))
    server.admin.create_users([UserSpec(name="app", password=APP_PASSWORD)])
    server.admin.enable_root(ROOT_PASSWORD)
    write_dataset(server, "before")
    return server


@pytest.fixture(scope="module")
def full(source: Server, workspace: Path) -> tuple[Path, BackupOutcome, State]:
    """A full backup of ``source``, its outcome and the state it holds; then ``source``
    changes (new, changed and deleted keys)."""
    state = read_state(source)
    target = workspace / "full.tar"
    outcome = back_up(source, target)
    write_dataset(source, "after")
    with binary(source, "app", APP_PASSWORD) as conn:
        conn.delete("bulk:before:0", "list:before")
        conn.set("bin:before", b"changed")
    assert read_state(source) != state
    return target, outcome, state


def test_catalog_takes_full_backups_only(engine: Engine) -> None:
    assert CATALOG.incremental_backups is False
    assert engine.catalog.incremental_backups is False


def test_restore_equals_the_state_at_the_backup(
    full: tuple[Path, BackupOutcome, State], new_server: Callable[..., Server]
) -> None:
    target, outcome, state = full
    restored = restore(new_server, "restored", target)
    assert read_state(restored) == state
    assert outcome.counts == persistent_counts(state)
    assert set(outcome.counts) == {"db0", "db1", "db7"}
    assert restored.engine.backups.counts(restored.paths, restored.spec) == outcome.counts
    assert outcome.positions["redis_version"].startswith("7.0.")
    assert int(outcome.positions["master_repl_offset"]) >= 0
    summary = restored.engine.backups.check(restored.paths, restored.spec)
    assert "RDB looks OK" in summary and "\n" not in summary
    loaded = sum(1 for _ in state)
    assert f"loaded {loaded} keys" in summary


def test_restored_users_log_in_and_the_new_admin_manages_them(
    full: tuple[Path, BackupOutcome, State],
    source: Server,
    new_server: Callable[..., Server],
) -> None:
    restored = restore(new_server, "users", full[0])
    with restored.tcp("app", APP_PASSWORD) as conn:
        assert conn.execute_command("ACL", "WHOAMI") == "app"
    with restored.tcp("root", ROOT_PASSWORD) as conn:
        assert conn.ping()
    assert restored.admin.is_root_enabled()
    assert [user.name for user in restored.admin.list_users()] == ["app"]
    restored.admin.create_users([UserSpec(name="newcomer", password="new-pw")])
    with restored.tcp("newcomer", "new-pw") as conn:
        assert conn.get("counter:before") == "41"
    assert [user.name for user in restored.admin.list_users()] == ["app", "newcomer"]
    # the source's admin password does not open the restored instance
    source_secret = (source.paths.root / "coffer-admin.secret").read_text().strip()
    restored_secret = (restored.paths.root / "coffer-admin.secret").read_text().strip()
    assert source_secret != restored_secret
    acl_file = (restored.paths.data_dir / "users.acl").read_text()
    assert source_secret not in acl_file and restored_secret not in acl_file
    with (
        pytest.raises(redis.AuthenticationError),
        restored.tcp("coffer-admin", source_secret) as conn,
    ):
        conn.ping()
    with pytest.raises(redis.AuthenticationError), restored.tcp("default", "") as conn:
        conn.ping()


def test_the_restored_instance_keeps_rdb_and_aof_persistence(
    full: tuple[Path, BackupOutcome, State], new_server: Callable[..., Server]
) -> None:
    target, outcome, state = full
    restored = restore(new_server, "persist", target)
    assert restored.admin_config("appendonly", "save") == {
        "appendonly": "yes",
        "save": "3600 1 300 100 60 10000",
    }
    with binary(restored, "app", APP_PASSWORD) as conn:
        conn.set(b"written:after:restore", b"\x00kept")
    restored.stop()
    restored.engine.lifecycle.configure(restored.paths, restored.spec)
    restored.start()
    after = read_state(restored)
    assert after.pop((0, b"written:after:restore")) == ("string", b"\x00kept", False)
    assert after == state
    assert (restored.paths.data_dir / "dump.rdb").is_file()  # the shutdown's snapshot
    counts = restored.engine.backups.counts(restored.paths, restored.spec)
    assert counts == {**outcome.counts, "db0": outcome.counts["db0"] + 1}


def test_check_reports_a_damaged_rdb(
    full: tuple[Path, BackupOutcome, State], new_server: Callable[..., Server]
) -> None:
    restored = restore(new_server, "damaged", full[0])
    base = restored.paths.data_dir / "appendonlydir" / "appendonly.aof.1.base.rdb"
    data = bytearray(base.read_bytes())
    data[len(data) // 2] ^= 0xFF
    base.write_bytes(bytes(data))
    with pytest.raises(EngineError, match="redis-check-rdb found damage in appendonly"):
        restored.engine.backups.check(restored.paths, restored.spec)


@pytest.mark.parametrize("where", ["header", "middle", "end"])
def test_a_stream_failing_midway_leaves_nothing(
    where: str, full: tuple[Path, BackupOutcome, State], new_server: Callable[..., Server]
) -> None:
    data = full[0].read_bytes()
    limit = {"header": 100, "middle": len(data) // 2, "end": len(data) - 1}[where]
    server = new_server(f"broken-{where}", prepared=False)
    with pytest.raises(IntegrityError, match="tampered"):
        stream = cast(BinaryIO, BreakingStream(data, limit))
        server.engine.backups.restore(server.paths, server.spec, [stream])
    assert not server.paths.data_dir.exists()
    assert set(os.listdir(server.paths.root)) <= LOCK_ONLY


def test_restores_of_bad_input_fail_clearly_and_change_nothing(
    full: tuple[Path, BackupOutcome, State], source: Server, new_server: Callable[..., Server]
) -> None:
    server = new_server("refused", prepared=False)
    backups, paths, spec = server.engine.backups, server.paths, server.spec
    with pytest.raises(EngineError, match="not a readable Coffer Redis backup"):
        backups.restore(paths, spec, [io.BytesIO(b"definitely not a tar archive" * 40)])
    with pytest.raises(EngineError, match="exactly one"):
        backups.restore(paths, spec, [io.BytesIO(), io.BytesIO()])
    data = full[0].read_bytes()
    with pytest.raises(EngineError, match="has unexpected data after its end"):
        backups.restore(paths, spec, [io.BytesIO(data + b"trailing")])
    with pytest.raises(EngineError, match="ends early"):
        backups.restore(paths, spec, [io.BytesIO(data[: len(data) // 2])])
    with pytest.raises(EngineError, match="ends early"):
        backups.restore(paths, spec, [io.BytesIO(b"")])
    assert not paths.data_dir.exists()
    assert set(os.listdir(paths.root)) <= LOCK_ONLY
    before = read_state(source)
    with (
        open(full[0], "rb") as stream,
        pytest.raises(EngineError, match="a data directory exists there"),
    ):
        source.engine.backups.restore(source.paths, source.spec, [stream])
    assert read_state(source) == before


def test_incrementals_are_refused_and_a_stopped_instance_cannot_be_backed_up(
    source: Server, new_server: Callable[..., Server]
) -> None:
    sink = io.BytesIO()
    parent = {"redis_version": "7.0.15", "master_repl_offset": "0"}
    with pytest.raises(NotImplementedByDatastore, match="full only"):
        source.engine.backups.backup(source.paths, source.spec, sink, parent)
    assert sink.getvalue() == b""
    stopped = new_server("stopped")
    with pytest.raises(EngineError, match="not reachable"):
        stopped.engine.backups.backup(stopped.paths, stopped.spec, sink)
    assert sink.getvalue() == b""


def test_a_backup_while_writes_go_on_is_consistent(
    new_server: Callable[..., Server], workspace: Path
) -> None:
    """A thread appends ``seq:<n>`` keys in order; a root ``BGSAVE`` has just been started
    when the backup starts. The restore holds exactly a prefix ``seq:0 .. seq:<m-1>``, and the
    counts recorded at the backup are the restored ones."""
    busy = start_new(new_server("busy"))
    busy.admin.create_users([UserSpec(name="app", password=APP_PASSWORD)])
    busy.admin.enable_root(ROOT_PASSWORD)
    with binary(busy, "app", APP_PASSWORD) as conn:
        pipe = conn.pipeline(transaction=False)
        for n in range(50000):
            pipe.set(f"preload:{n}", os.urandom(100))
        pipe.execute()
    written = 0
    stop = threading.Event()

    def append() -> None:
        nonlocal written
        with binary(busy, "app", APP_PASSWORD) as conn:
            while not stop.is_set():
                conn.set(f"seq:{written}", written)
                written += 1

    writer = threading.Thread(target=append)
    writer.start()
    try:
        while written < 200:
            time.sleep(0.01)
        with busy.tcp("root", ROOT_PASSWORD) as conn:
            try:
                conn.bgsave()
            except redis.ResponseError as exc:  # a save point got there first: as good
                assert "already in progress" in str(exc)
        outcome = back_up(busy, workspace / "busy.tar")
        at_backup_end = written
        while written < at_backup_end + 200:
            time.sleep(0.01)
    finally:
        stop.set()
        writer.join(timeout=30)

    restored = restore(new_server, "busy-restored", workspace / "busy.tar")
    with binary(restored, "app", APP_PASSWORD) as conn:
        seq = sorted(int(key.split(b":")[1]) for key in conn.scan_iter("seq:*", count=5000))
        assert conn.dbsize() == 50000 + len(seq)
    assert seq == list(range(len(seq))) and 200 <= len(seq) <= at_backup_end
    assert written > len(seq)  # writes went on after the snapshot
    assert outcome.counts == {"db0": 50000 + len(seq)}
    assert restored.engine.backups.counts(restored.paths, restored.spec) == outcome.counts
    assert "RDB looks OK" in restored.engine.backups.check(restored.paths, restored.spec)
