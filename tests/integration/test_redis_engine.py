"""The Redis engine against real Redis 7.0 servers, each run as its own OS account.

Every server gets a fresh per-instance account (``coffer.agent.osusers``), as the agent
gives it. Directories live under a short, world-traversable ``/tmp/cfrd-*`` root (pytest's
``tmp_path`` is private to root, so the instance account could not reach it). Every
server a test starts is stopped, or killed, by a finalizer; then the accounts and the
root are removed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from coffer.agent.osusers import ensure_account, remove_account
from coffer.contracts.engine import DatabaseSpec, InstanceSpec, UserSpec, UserUpdate
from coffer.engines.base import Admin, Engine, InstancePaths
from coffer.engines.redis import build_engine
from coffer.engines.redis.catalog import CATALOG, PARAMETER_RULES
from coffer.errors import BadRequest, EngineError, NotFound, NotImplementedByDatastore
from tests.support import engine_harness

REDIS_VERSION = "7.0"
SERVER = Path("/usr/bin/redis-server")
#: ACL refusals, and DEBUG/MODULE, which the configuration closes to every user.
REFUSED = r"has no permissions to run|command not allowed"

# its tests share one engine server: keep them on one xdist worker
pytestmark = engine_harness.engine_marks(
    "test_redis_engine", SERVER, "redis-server is not installed"
)


free_port = engine_harness.PortRange(22000, 22999).take


def client(
    port: int,
    user: str | None,
    password: str | None,
    *,
    db: int = 0,
    decode_responses: bool = True,
    timeout_s: float = 5,
) -> redis.Redis:
    """A RESP2 TCP client on 127.0.0.1:``port`` that never retries."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        db=db,
        username=user,
        password=password,
        decode_responses=decode_responses,
        protocol=2,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        driver_info=None,
    )


class Server:
    """One Redis instance driven the way the agent drives it, as its own OS account."""

    def __init__(self, engine: Engine, root: Path, **spec_values: Any) -> None:
        self.engine = engine
        self.instance_id = uuid.uuid4().hex
        self.os_user = ensure_account(self.instance_id, root.parent)
        self.paths = InstancePaths(root=root, os_user=self.os_user)
        values: dict[str, Any] = {
            "instance_id": self.instance_id,
            "engine": "redis",
            "version": REDIS_VERSION,
            "port": free_port(),
            "ram_mb": 256,
            "vcpus": 1,
            "volume_gb": 1,
        }
        values.update(spec_values)
        self.spec = InstanceSpec.model_validate(values)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def admin(self) -> Admin:
        return self.engine.admin(self.paths, self.spec)

    def prepare_and_configure(self) -> None:
        self.engine.lifecycle.prepare(self.paths, self.spec)
        self.engine.lifecycle.configure(self.paths, self.spec)

    def start(self) -> None:
        argv = self.engine.lifecycle.command(self.paths, self.spec)
        entry = pwd.getpwnam(self.os_user)
        with open(self.paths.log_file, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                user=entry.pw_uid,
                group=entry.pw_gid,
                extra_groups=[],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(self.paths.root),
                env={"HOME": entry.pw_dir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
        self.wait_accepting()

    def wait_accepting(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited {self.process.returncode}: {self.log_tail()}")
            if self.engine.lifecycle.probe(self.paths, self.spec).accepting:
                return
            time.sleep(0.02)
        pytest.fail(f"redis-server did not accept connections: {self.log_tail()}")

    def stop(self) -> None:
        """Stop with the engine's stop signal; SIGKILL the group if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(self.engine.lifecycle.stop_signal)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def log_tail(self) -> str:
        try:
            return self.paths.log_file.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def tcp(self, user: str | None, password: str | None) -> redis.Redis:
        return client(self.spec.port, user, password)

    def admin_config(self, *names: str) -> dict[str, str]:
        secret = (self.paths.root / "coffer-admin.secret").read_text().strip()
        with redis.Redis(
            unix_socket_path=str(self.paths.run_dir / "redis.sock"),
            username="coffer-admin",
            password=secret,
            decode_responses=True,
            protocol=2,
            driver_info=None,
        ) as admin:
            found: dict[str, str] = admin.config_get(*names)
        return found

    def respec(self, **changes: Any) -> InstanceSpec:
        return self.spec.model_copy(update=changes)


def cleanup_steps(server: Server) -> list[Callable[[], object]]:
    """Stop ``server``, SIGKILL its group whatever happened, then remove its account."""
    return [server.stop, server.kill, lambda: remove_account(server.instance_id)]


workspace = engine_harness.workspace_fixture("cfrd-")
engine = engine_harness.engine_fixture(build_engine, "coffer")


@pytest.fixture(scope="module")
def new_server(workspace: Path, engine: Engine) -> Iterator[Callable[..., Server]]:
    """Factory of prepared, configured, stopped servers; at the end all are stopped and
    their accounts removed, whatever happened."""
    fleet = engine_harness.Fleet(cleanup_steps)

    def make(name: str, **spec_values: Any) -> Server:
        server = fleet.add(Server(engine, workspace / name, **spec_values))
        server.prepare_and_configure()
        return server

    yield make
    fleet.close()


@pytest.fixture(scope="module")
def server(new_server: Callable[..., Server]) -> Server:
    """One running instance shared by the admin tests (each uses its own names)."""
    running = new_server("main")
    running.start()
    running.engine.lifecycle.bootstrap(running.paths, running.spec)
    return running


def test_installed_versions(engine: Engine) -> None:
    assert engine.lifecycle.installed_versions() == [REDIS_VERSION]


def test_files_are_private_and_the_admin_secret_is_root_only(server: Server) -> None:
    uid = pwd.getpwnam(server.os_user).pw_uid
    for directory in (server.paths.data_dir, server.paths.run_dir):
        info = directory.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (uid, 0o700)
    info = (server.paths.root / "redis.conf").stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (uid, 0o600)
    # ACL SAVE rewrites the ACL file with the server's umask; the 0700 directory guards it
    assert (server.paths.data_dir / "users.acl").stat().st_uid == uid
    secret_file = server.paths.root / "coffer-admin.secret"
    info = secret_file.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o600)
    secret = secret_file.read_text().strip()
    assert len(secret) >= 40
    for file in server.paths.data_dir.rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), file
    assert secret not in (server.paths.root / "redis.conf").read_text()
    assert not list(server.paths.root.glob(".*.partial"))


def test_prepare_and_configure_are_idempotent(server: Server) -> None:
    conf = (server.paths.root / "redis.conf").read_text()
    acl_file = server.paths.data_dir / "users.acl"
    acl_before = (acl_file.read_text(), acl_file.stat().st_mtime_ns)
    secret = (server.paths.root / "coffer-admin.secret").read_text()
    server.prepare_and_configure()
    assert (server.paths.root / "redis.conf").read_text() == conf
    assert (acl_file.read_text(), acl_file.stat().st_mtime_ns) == acl_before
    assert (server.paths.root / "coffer-admin.secret").read_text() == secret


def test_bootstrap_is_idempotent(server: Server) -> None:
    server.engine.lifecycle.bootstrap(server.paths, server.spec)
    assert server.engine.lifecycle.probe(server.paths, server.spec).accepting


def test_running_pid_finds_the_server(server: Server, workspace: Path) -> None:
    assert server.process is not None
    assert server.engine.lifecycle.running_pid(server.paths) == server.process.pid
    nowhere = InstancePaths(root=workspace / "nope", os_user=server.os_user)
    assert server.engine.lifecycle.running_pid(nowhere) is None


def test_user_reads_and_writes_over_tcp(server: Server) -> None:
    server.admin.create_users([UserSpec(name="app", password="s3cret'pw \"x")])
    with server.tcp("app", "s3cret'pw \"x") as conn:
        assert conn.set("greeting", "hello")
        assert conn.get("greeting") == "hello"
        assert conn.execute_command("ACL", "WHOAMI") == "app"
        conn.select(1)  # numbered logical databases stay usable
        conn.set("other", "db1")
    assert "app" in [user.name for user in server.admin.list_users()]
    view = server.admin.get_user("app", "%")
    assert (view.name, view.host, view.databases) == ("app", "%", ())


def test_wrong_password_and_the_default_user_are_refused(server: Server) -> None:
    server.admin.create_users([UserSpec(name="guard", password="right")])
    with pytest.raises(redis.AuthenticationError), server.tcp("guard", "wrong") as conn:
        conn.ping()
    with pytest.raises(redis.AuthenticationError), server.tcp(None, None) as conn:
        conn.ping()
    with pytest.raises(redis.AuthenticationError), server.tcp("default", "") as conn:
        conn.ping()
    with pytest.raises(redis.AuthenticationError), server.tcp("coffer-admin", "guess") as conn:
        conn.ping()


@pytest.mark.parametrize(
    "command",
    [
        ("CONFIG", "GET", "maxmemory"),
        ("CONFIG", "SET", "maxmemory", "0"),
        ("CONFIG", "REWRITE"),
        ("ACL", "LIST"),
        ("ACL", "SETUSER", "intruder", "on", ">pw", "+@all"),
        ("ACL", "SAVE"),
        ("SHUTDOWN", "NOSAVE"),
        ("DEBUG", "SLEEP", "0"),
        ("MODULE", "LIST"),
        ("CLIENT", "LIST"),
        ("CLIENT", "KILL", "USER", "coffer-admin"),
        ("REPLICAOF", "127.0.0.1", "1"),
        ("MIGRATE", "127.0.0.1", "1", "k", "0", "100"),
        ("BGSAVE",),
        ("SLOWLOG", "GET"),
    ],
)
def test_tenant_users_cannot_administer_the_server(
    server: Server, command: tuple[str, ...]
) -> None:
    if "tenant" not in [user.name for user in server.admin.list_users()]:
        server.admin.create_users([UserSpec(name="tenant", password="pw")])
    with server.tcp("tenant", "pw") as conn, pytest.raises(redis.ResponseError, match=REFUSED):
        conn.execute_command(*command)
    assert server.engine.lifecycle.probe(server.paths, server.spec).accepting


def test_tenant_users_keep_the_data_commands(server: Server) -> None:
    if "worker" not in [user.name for user in server.admin.list_users()]:
        server.admin.create_users([UserSpec(name="worker", password="pw")])
    with server.tcp("worker", "pw") as conn:
        conn.set("w:1", "x")
        assert conn.keys("w:*") == ["w:1"]
        assert conn.eval("return redis.call('GET', KEYS[1])", 1, "w:1") == "x"
        conn.publish("news", "hi")
        assert "redis_version" in conn.info("server")
        conn.delete("w:1")


def test_maxmemory_and_eviction_policy_come_from_the_flavor(server: Server) -> None:
    expected = CATALOG.memory_settings(server.spec.ram_mb)
    found = server.admin_config("maxmemory", "maxmemory-policy", "maxclients", "appendonly")
    assert found["maxmemory"] == expected["maxmemory"] == str(192 * 1024 * 1024)
    assert found["maxmemory-policy"] == "noeviction"
    assert found["maxclients"] == expected["maxclients"]
    assert found["appendonly"] == "yes"


def test_parameters_apply_live_and_return_to_their_defaults(server: Server) -> None:
    lifecycle = server.engine.lifecycle
    names = ("maxmemory-policy", "timeout", "notify-keyspace-events", "lazyfree-lazy-eviction")
    tuned = server.respec(
        ram_mb=512,
        parameters={
            "maxmemory-policy": "allkeys-lru",
            "timeout": 300,
            "notify-keyspace-events": "Ex",
            "lazyfree-lazy-eviction": True,
            "databases": 4,  # restart-required: not applied live
        },
    )
    try:
        lifecycle.configure(server.paths, tuned)
        lifecycle.apply_parameters(server.paths, tuned)
        found = server.admin_config(*names, "maxmemory", "databases")
        assert found == {
            "maxmemory-policy": "allkeys-lru",
            "timeout": "300",
            "notify-keyspace-events": "xE",
            "lazyfree-lazy-eviction": "yes",
            "maxmemory": str(384 * 1024 * 1024),
            "databases": "16",
        }
        lifecycle.apply_parameters(server.paths, tuned)  # idempotent
    finally:
        lifecycle.configure(server.paths, server.spec)
        lifecycle.apply_parameters(server.paths, server.spec)
    assert server.admin_config(*names) == {
        "maxmemory-policy": "noeviction",
        "timeout": "0",
        "notify-keyspace-events": "",
        "lazyfree-lazy-eviction": "no",
    }


def test_read_only_refuses_writes_and_keeps_reads(server: Server) -> None:
    """The volume guard's read-only, live and through a restart of the configuration."""
    lifecycle = server.engine.lifecycle
    server.admin.create_users([UserSpec(name="ro_user", password="ro-pw")])
    with server.tcp("ro_user", "ro-pw") as conn:
        conn.set("before", "1")
    blocked = server.respec(read_only=True)
    try:
        lifecycle.configure(server.paths, blocked)
        lifecycle.apply_parameters(server.paths, blocked)
        assert "min-replicas-to-write 1" in (server.paths.root / "redis.conf").read_text()
        with server.tcp("ro_user", "ro-pw") as conn:
            assert conn.get("before") == "1"
            for write in (lambda: conn.set("after", "2"), lambda: conn.delete("before")):
                with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
                    write()
    finally:
        lifecycle.configure(server.paths, server.spec)
        lifecycle.apply_parameters(server.paths, server.spec)
    with server.tcp("ro_user", "ro-pw") as conn:
        conn.set("after", "2")
        assert conn.get("after") == "2"
    server.admin.delete_user("ro_user", "%")


def test_parameter_bounds_are_accepted_by_redis(server: Server) -> None:
    """Every live integer rule's min and max are values the running Redis takes."""
    lifecycle = server.engine.lifecycle
    integer_rules = [r for r in PARAMETER_RULES if r.type == "integer" and not r.restart_required]
    try:
        for bound in ("min", "max"):
            values = {rule.name: getattr(rule, bound) for rule in integer_rules}
            lifecycle.apply_parameters(server.paths, server.respec(parameters=values))
            found = server.admin_config(*values)
            assert found == {name: str(value) for name, value in values.items()}
    finally:
        lifecycle.apply_parameters(server.paths, server.spec)
    assert server.admin_config("hz")["hz"] == "10"


def test_duplicates_unknowns_and_bad_input_change_nothing(server: Server) -> None:
    admin = server.admin
    admin.create_users([UserSpec(name="dupuser", password="pw")])
    with pytest.raises(BadRequest, match="user 'dupuser' already exists"):
        admin.create_users(
            [UserSpec(name="fresh", password="pw"), UserSpec(name="dupuser", password="x")]
        )
    with pytest.raises(BadRequest, match="listed twice"):
        admin.create_users(
            [UserSpec(name="twice", password="a"), UserSpec(name="twice", password="b")]
        )
    with pytest.raises(BadRequest, match="'x on >pw'"):
        admin.create_users([UserSpec(name="x on >pw", password="pw")])
    with pytest.raises(BadRequest, match="reserved"):
        admin.create_users([UserSpec(name="default", password="pw")])
    with pytest.raises(BadRequest, match="not tied to a host"):
        admin.get_user("dupuser", "10.0.0.1")
    with pytest.raises(NotImplementedByDatastore, match="Redis has no databases"):
        admin.create_users([UserSpec(name="fresh", password="pw", databases=("shop",))])
    names = [user.name for user in admin.list_users()]
    assert "fresh" not in names and "twice" not in names
    with server.tcp("dupuser", "pw") as conn:
        assert conn.ping()  # the duplicate did not change its password
    for call in (
        lambda: admin.get_user("ghost", "%"),
        lambda: admin.delete_user("ghost", "%"),
        lambda: admin.update_user("ghost", "%", UserUpdate(password="pw")),
    ):
        with pytest.raises(NotFound):
            call()


def test_internal_users_are_hidden_and_untouchable(server: Server) -> None:
    names = [user.name for user in server.admin.list_users()]
    assert not {"default", "coffer-admin", "root"} & set(names)
    for name in ("coffer-admin", "default", "root"):
        with pytest.raises(BadRequest, match="reserved"):
            server.admin.delete_user(name, "%")
    with pytest.raises(BadRequest, match="reserved"):
        server.admin.update_user("dupuser", "%", UserUpdate(name="coffer-admin"))


def test_databases_and_access_are_not_implemented(server: Server) -> None:
    admin = server.admin
    for call in (
        admin.list_databases,
        lambda: admin.create_databases([DatabaseSpec(name="shop")]),
        lambda: admin.delete_database("shop"),
        lambda: admin.list_access("app", "%"),
        lambda: admin.grant_access("app", "%", ["shop"]),
        lambda: admin.revoke_access("app", "%", "shop"),
    ):
        with pytest.raises(NotImplementedByDatastore, match="Redis has no databases"):
            call()


def test_update_user_renames_and_changes_password(server: Server) -> None:
    admin = server.admin
    admin.create_users([UserSpec(name="old_name", password="old-pw")])
    session = server.tcp("old_name", "old-pw")
    session.ping()
    admin.update_user("old_name", "%", UserUpdate(name="new_name", password="new-pw"))
    with pytest.raises(redis.ConnectionError):
        session.ping()  # the old user's connections are closed
    session.close()
    with server.tcp("new_name", "new-pw") as conn:
        assert conn.execute_command("ACL", "WHOAMI") == "new_name"
        with pytest.raises(redis.exceptions.NoPermissionError):
            conn.config_get("maxmemory")  # the same (tenant) rules
    with pytest.raises(redis.AuthenticationError), server.tcp("new_name", "old-pw") as conn:
        conn.ping()
    with pytest.raises(NotFound):
        admin.get_user("old_name", "%")
    admin.update_user("new_name", "%", UserUpdate(password="newer-pw"))
    with server.tcp("new_name", "newer-pw") as conn:
        conn.ping()
    with pytest.raises(BadRequest, match="not tied to a host"):
        admin.update_user("new_name", "%", UserUpdate(host="10.0.0.1"))
    with pytest.raises(BadRequest, match="nothing to change"):
        admin.update_user("new_name", "%", UserUpdate())
    admin.create_users([UserSpec(name="taken", password="pw")])
    with pytest.raises(BadRequest, match="already exists"):
        admin.update_user("new_name", "%", UserUpdate(name="taken"))


def test_delete_user_closes_its_connections(server: Server) -> None:
    admin = server.admin
    admin.create_users([UserSpec(name="temp", password="pw")])
    session = server.tcp("temp", "pw")
    session.ping()
    admin.delete_user("temp", "%")
    with pytest.raises(redis.ConnectionError):
        session.ping()
    session.close()
    assert "temp" not in [user.name for user in admin.list_users()]
    with pytest.raises(NotFound):
        admin.delete_user("temp", "%")


def test_root_enable_and_disable(server: Server) -> None:
    admin = server.admin
    assert admin.is_root_enabled() is False
    with pytest.raises(NotFound, match="root is not enabled"):
        admin.disable_root()
    assert admin.enable_root("root-pw") == "root-pw"
    assert admin.is_root_enabled() is True
    with server.tcp("root", "root-pw") as conn:
        assert conn.bgsave()
        assert any(c["user"] == "root" for c in conn.client_list())
        assert conn.slowlog_len() >= 0
        for forbidden in (
            ("CONFIG", "GET", "masterauth"),
            ("CONFIG", "SET", "maxmemory", "0"),
            ("ACL", "SETUSER", "coffer-admin", "off"),
            ("ACL", "LIST"),
            ("SHUTDOWN", "NOSAVE"),
            ("MODULE", "LOAD", "/tmp/x.so"),
            ("REPLICAOF", "127.0.0.1", "1"),
        ):
            with pytest.raises(redis.ResponseError, match=REFUSED):
                conn.execute_command(*forbidden)
    generated = admin.enable_root("")
    assert len(generated) >= 20
    with pytest.raises(redis.AuthenticationError), server.tcp("root", "root-pw") as conn:
        conn.ping()
    session = server.tcp("root", generated)
    session.ping()
    admin.disable_root()
    assert admin.is_root_enabled() is False
    with pytest.raises(redis.ConnectionError):
        session.ping()
    session.close()
    with pytest.raises(redis.AuthenticationError), server.tcp("root", generated) as conn:
        conn.ping()
    with pytest.raises(BadRequest, match="reserved"):
        admin.create_users([UserSpec(name="root", password="pw")])


def test_noeviction_refuses_writes_when_memory_is_full(new_server: Callable[..., Server]) -> None:
    server = new_server("tiny", ram_mb=4)
    server.start()
    server.admin.create_users([UserSpec(name="filler", password="pw")])
    with server.tcp("filler", "pw") as conn:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for n in range(64):
                conn.set(f"blob:{n}", "x" * 262144)
        assert conn.exists("blob:0") == 1  # nothing was evicted to make room
        conn.delete(*(f"blob:{n}" for n in range(64)))


def test_restart_keeps_data_users_and_root_and_secrets_stay_out_of_files(
    new_server: Callable[..., Server],
) -> None:
    server = new_server("restart", parameters={"databases": 4})
    server.start()
    server.engine.lifecycle.bootstrap(server.paths, server.spec)
    password, root_password = "Never-Log-Me-42", "Root-Never-Logged"
    server.admin.create_users([UserSpec(name="keeper", password=password)])
    server.admin.enable_root(root_password)
    with server.tcp("keeper", password) as conn:
        conn.set("kept", "persisted")
        conn.select(3)
        conn.rpush("list", "a", "b")

    server.stop()
    lifecycle = server.engine.lifecycle
    assert lifecycle.running_pid(server.paths) is None
    probe = lifecycle.probe(server.paths, server.spec)
    assert not probe.accepting and probe.detail
    with pytest.raises(EngineError, match="not reachable"):
        server.admin.list_users()

    lifecycle.configure(server.paths, server.spec)
    server.start()
    assert [user.name for user in server.admin.list_users()] == ["keeper"]
    assert server.admin.is_root_enabled()
    with server.tcp("keeper", password) as conn:
        assert conn.get("kept") == "persisted"
        conn.select(3)
        assert conn.lrange("list", 0, -1) == ["a", "b"]
    with server.tcp("root", root_password) as conn:
        assert conn.ping()
    assert server.admin_config("databases") == {"databases": "4"}
    files = [server.paths.log_file, server.paths.root / "redis.conf"]
    files += [f for f in server.paths.data_dir.rglob("*") if f.is_file()]
    for file in files:
        content = file.read_bytes()
        assert password.encode() not in content and root_password.encode() not in content, file


def test_a_killed_server_leaves_a_stale_pid_and_keeps_fsynced_writes(
    new_server: Callable[..., Server],
) -> None:
    server = new_server("killed", parameters={"appendfsync": "always"})
    server.start()
    server.engine.lifecycle.bootstrap(server.paths, server.spec)
    server.admin.create_users([UserSpec(name="writer", password="pw")])
    with server.tcp("writer", "pw") as conn:
        conn.set("durable", "yes")
    server.kill()
    assert (server.paths.run_dir / "redis.pid").exists()
    assert server.engine.lifecycle.running_pid(server.paths) is None
    server.start()
    with server.tcp("writer", "pw") as conn:
        assert conn.get("durable") == "yes"


def test_prepare_refuses_a_root_the_instance_account_cannot_reach(
    engine: Engine, server: Server, workspace: Path
) -> None:
    private = workspace / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    paths = InstancePaths(root=private / "inst", os_user=server.os_user)
    with pytest.raises(EngineError, match=str(private)):
        engine.lifecycle.prepare(paths, server.spec)
    assert not paths.data_dir.exists()


def test_unknown_versions_unprepared_roots_and_managed_parameters_are_refused(
    engine: Engine, server: Server, workspace: Path
) -> None:
    with pytest.raises(BadRequest, match="not supported"):
        engine.lifecycle.prepare(server.paths, server.respec(version="6.2"))
    unprepared = InstancePaths(root=workspace / "unprepared", os_user=server.os_user)
    with pytest.raises(EngineError, match="not a prepared data directory"):
        engine.lifecycle.configure(unprepared, server.spec)
    conf = (server.paths.root / "redis.conf").read_text()
    with pytest.raises(BadRequest, match="managed by Coffer"):
        engine.lifecycle.configure(server.paths, server.respec(parameters={"dir": "/etc"}))
    with pytest.raises(BadRequest, match="managed by Coffer"):
        engine.lifecycle.apply_parameters(
            server.paths, server.respec(parameters={"loadmodule": "/tmp/x.so"})
        )
    assert (server.paths.root / "redis.conf").read_text() == conf


def test_stats_count_clients_and_commands(
    server: Server, new_server: Callable[..., Server]
) -> None:
    stats = server.engine.stats
    assert stats is not None
    server.admin.create_users([UserSpec(name="watcher", password="w-pw-1")])
    before = stats.counters(server.paths, server.spec)
    assert before.kind == "commands"
    with server.tcp("watcher", "w-pw-1") as conn:
        for n in range(25):
            conn.set("stats-key", n)
        during = stats.counters(server.paths, server.spec)
    assert during.connections >= before.connections + 1, "the open client counts"
    assert during.operations >= before.operations + 25
    stopped = new_server("stats-stopped")
    with pytest.raises(EngineError, match="reading the activity counters"):
        stats.counters(stopped.paths, stopped.spec)
