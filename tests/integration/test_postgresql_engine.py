"""The PostgreSQL engine against real PostgreSQL 15 servers run as the ``coffer`` user.

Engine directories live under a short, world-traversable ``/tmp/cfpg-*`` root (pytest's
``tmp_path`` is private to root, so the engine user could not reach it). Every server a
test starts is stopped, or killed, by a finalizer, and the root is removed.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from coffer.contracts.engine import DatabaseSpec, InstanceSpec, UserSpec, UserUpdate
from coffer.engines.base import Admin, Engine, InstancePaths
from coffer.engines.postgresql import build_engine
from coffer.errors import BadRequest, EngineError, NotFound
from tests.support import engine_harness
from tests.support.processes import wait_for

ENGINE_USER = "coffer"
PG_VERSION = "15"
POSTGRES = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin/postgres")

# its tests share one engine server: keep them on one xdist worker
pytestmark = engine_harness.engine_marks(
    "test_postgresql_engine", POSTGRES, "PostgreSQL 15 is not installed"
)


free_port = engine_harness.PortRange(20000, 20999).take


class Server:
    """One PostgreSQL instance driven the way the agent drives it."""

    def __init__(self, engine: Engine, root: Path, **spec_values: Any) -> None:
        self.engine = engine
        self.paths = InstancePaths(root=root, os_user="coffer")
        values: dict[str, Any] = {
            "instance_id": root.name,
            "engine": "postgresql",
            "version": PG_VERSION,
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
        """Run the server as ``paths.os_user`` with that account's primary group."""
        argv = self.engine.lifecycle.command(self.paths, self.spec)
        with open(self.paths.log_file, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                user=self.paths.os_user,
                group=pwd.getpwnam(self.paths.os_user).pw_gid,
                extra_groups=[],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd="/",
            )
        self.wait_accepting()

    def wait_accepting(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"postgres exited {self.process.returncode}: {self.log_tail()}")
            if self.engine.lifecycle.probe(self.paths, self.spec).accepting:
                return
            time.sleep(0.1)
        pytest.fail(f"postgres did not accept connections: {self.log_tail()}")

    def stop(self) -> None:
        """Fast shutdown with the engine's stop signal; SIGKILL the group if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(self.engine.lifecycle.stop_signal)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self) -> str:
        try:
            return self.paths.log_file.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def tcp(self, user: str, password: str | None, dbname: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.spec.port,
            user=user,
            password=password,
            dbname=dbname,
            connect_timeout=5,
            autocommit=True,
        )


workspace = engine_harness.workspace_fixture("cfpg-")
engine = engine_harness.engine_fixture(build_engine, ENGINE_USER)


@pytest.fixture(scope="module")
def new_server(workspace: Path, engine: Engine) -> Iterator[Callable[..., Server]]:
    """Factory of prepared, configured, stopped servers; all are stopped at the end."""
    fleet: engine_harness.Fleet[Server] = engine_harness.Fleet(lambda s: [s.stop])

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
    assert engine.lifecycle.installed_versions() == [PG_VERSION]


def test_prepare_makes_private_directories_owned_by_the_engine_user(server: Server) -> None:
    engine_uid = pwd.getpwnam(ENGINE_USER).pw_uid
    for directory in (server.paths.data_dir, server.paths.run_dir):
        info = directory.stat()
        assert info.st_uid == engine_uid
        assert stat.S_IMODE(info.st_mode) == 0o700
    for name in ("coffer.conf", "pg_hba.conf", "postgresql.conf"):
        assert (server.paths.data_dir / name).stat().st_uid == engine_uid
    assert not list(server.paths.root.glob(".*.partial"))


def test_prepare_and_configure_are_idempotent(server: Server) -> None:
    before = (server.paths.data_dir / "postgresql.conf").read_text()
    server.prepare_and_configure()
    assert (server.paths.data_dir / "postgresql.conf").read_text() == before
    assert before.count("include = 'coffer.conf'") == 1


def test_bootstrap_is_idempotent(server: Server) -> None:
    server.engine.lifecycle.bootstrap(server.paths, server.spec)


def test_running_pid_finds_the_postmaster(server: Server, workspace: Path) -> None:
    assert server.process is not None
    assert server.engine.lifecycle.running_pid(server.paths) == server.process.pid
    assert (
        server.engine.lifecycle.running_pid(
            InstancePaths(root=workspace / "nope", os_user="coffer")
        )
        is None
    )


def test_user_reaches_its_database_over_tcp(server: Server) -> None:
    server.admin.create_databases([DatabaseSpec(name="shop")])
    server.admin.create_users([UserSpec(name="app", password="s3cret'pw", databases=("shop",))])
    with server.tcp("app", "s3cret'pw", "shop") as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, label text)")
        conn.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two')")
        rows = conn.execute("SELECT label FROM items ORDER BY id").fetchall()
    assert rows == [("one",), ("two",)]
    assert "shop" in [db.name for db in server.admin.list_databases()]
    assert server.admin.get_user("app", "%").databases == ("shop",)


def test_wrong_password_and_remote_superuser_are_refused(server: Server) -> None:
    server.admin.create_databases([DatabaseSpec(name="vault")])
    server.admin.create_users([UserSpec(name="guard", password="right", databases=("vault",))])
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        server.tcp("guard", "wrong", "vault")
    with pytest.raises(psycopg.OperationalError, match="rejects connection"):
        server.tcp("postgres", None, "postgres")
    with pytest.raises(psycopg.OperationalError, match="rejects connection"):
        server.tcp("postgres", "anything", "vault")


def test_users_reach_only_granted_databases(server: Server) -> None:
    server.admin.create_databases([DatabaseSpec(name="alpha"), DatabaseSpec(name="beta")])
    server.admin.create_users([UserSpec(name="ann", password="pw-ann")])
    assert server.admin.list_access("ann", "%") == []
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        server.tcp("ann", "pw-ann", "alpha")

    server.admin.grant_access("ann", "%", ["alpha", "beta"])
    server.admin.grant_access("ann", "%", ["alpha"])  # idempotent
    assert server.admin.list_access("ann", "%") == ["alpha", "beta"]
    with server.tcp("ann", "pw-ann", "beta") as conn:
        conn.execute("CREATE TABLE notes (body text)")

    server.admin.revoke_access("ann", "%", "beta")
    assert server.admin.list_access("ann", "%") == ["alpha"]
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        server.tcp("ann", "pw-ann", "beta")
    listed = {user.name: user.databases for user in server.admin.list_users()}
    assert listed["ann"] == ("alpha",)
    assert "postgres" not in listed and "root" not in listed


def test_duplicates_unknowns_and_bad_input_change_nothing(server: Server) -> None:
    admin = server.admin
    admin.create_databases([DatabaseSpec(name="dup")])
    admin.create_users([UserSpec(name="dupuser", password="pw")])
    with pytest.raises(BadRequest, match="database 'dup' already exists"):
        admin.create_databases([DatabaseSpec(name="fresh"), DatabaseSpec(name="dup")])
    with pytest.raises(BadRequest, match="user 'dupuser' already exists"):
        admin.create_users(
            [UserSpec(name="fresh", password="pw"), UserSpec(name="dupuser", password="x")]
        )
    with pytest.raises(NotFound, match="database 'missing' does not exist"):
        admin.create_users([UserSpec(name="fresh", password="pw", databases=("missing",))])
    with pytest.raises(BadRequest, match="listed twice"):
        admin.create_databases([DatabaseSpec(name="twice"), DatabaseSpec(name="twice")])
    with pytest.raises(BadRequest, match="'x\"; DROP ROLE app; --'"):
        admin.create_users([UserSpec(name='x"; DROP ROLE app; --', password="pw")])
    with pytest.raises(BadRequest, match="not tied to a host"):
        admin.get_user("dupuser", "10.0.0.1")
    with pytest.raises(BadRequest, match="reserved"):
        admin.delete_database("postgres")
    names = [db.name for db in admin.list_databases()]
    assert "fresh" not in names and "twice" not in names
    assert "fresh" not in [user.name for user in admin.list_users()]
    for call in (
        lambda: admin.get_user("ghost", "%"),
        lambda: admin.delete_user("ghost", "%"),
        lambda: admin.list_access("ghost", "%"),
        lambda: admin.grant_access("dupuser", "%", ["nodb"]),
        lambda: admin.revoke_access("dupuser", "%", "nodb"),
        lambda: admin.delete_database("nodb"),
    ):
        with pytest.raises(NotFound):
            call()


def test_encodings_and_locales(server: Server) -> None:
    server.admin.create_databases(
        [
            DatabaseSpec(name="legacy", character_set="LATIN1"),
            DatabaseSpec(name="sorted", collate="C"),
        ]
    )
    by_name = {db.name: db for db in server.admin.list_databases()}
    assert (by_name["legacy"].character_set, by_name["legacy"].collate) == ("LATIN1", "C")
    assert (by_name["sorted"].character_set, by_name["sorted"].collate) == ("UTF8", "C")
    with pytest.raises(BadRequest, match="locale"):
        server.admin.create_databases(
            [DatabaseSpec(name="first_ok"), DatabaseSpec(name="bad_loc", collate="xx_XX.UTF-8")]
        )
    names = [db.name for db in server.admin.list_databases()]
    assert "first_ok" not in names and "bad_loc" not in names


def test_update_user_renames_and_changes_password(server: Server) -> None:
    admin = server.admin
    admin.create_databases([DatabaseSpec(name="books")])
    admin.create_users([UserSpec(name="old_name", password="old-pw", databases=("books",))])
    admin.update_user("old_name", "%", UserUpdate(name="new_name", password="new-pw"))
    with server.tcp("new_name", "new-pw", "books") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("new_name",)
    with pytest.raises(psycopg.OperationalError):
        server.tcp("new_name", "old-pw", "books")
    with pytest.raises(NotFound):
        admin.get_user("old_name", "%")
    with pytest.raises(BadRequest, match="not tied to a host"):
        admin.update_user("new_name", "%", UserUpdate(host="10.0.0.1"))
    with pytest.raises(BadRequest, match="nothing to change"):
        admin.update_user("new_name", "%", UserUpdate())


def test_delete_user_drops_what_it_owns_and_delete_database_ends_sessions(server: Server) -> None:
    admin = server.admin
    admin.create_databases([DatabaseSpec(name="scratch")])
    admin.create_users([UserSpec(name="temp", password="pw", databases=("scratch",))])
    with server.tcp("temp", "pw", "scratch") as conn:
        conn.execute("CREATE TABLE mine (x int)")
    admin.delete_user("temp", "%")
    assert "temp" not in [user.name for user in admin.list_users()]
    with pytest.raises(NotFound):
        admin.delete_user("temp", "%")

    admin.create_users([UserSpec(name="lingers", password="pw", databases=("scratch",))])
    session = server.tcp("lingers", "pw", "scratch")
    try:
        admin.delete_database("scratch")
    finally:
        session.close()
    assert "scratch" not in [db.name for db in admin.list_databases()]
    assert admin.list_access("lingers", "%") == []


def test_root_enable_and_disable(server: Server) -> None:
    admin = server.admin
    assert admin.is_root_enabled() is False
    with pytest.raises(NotFound, match="root is not enabled"):
        admin.disable_root()
    assert admin.enable_root("root-pw") == "root-pw"
    assert admin.is_root_enabled() is True
    with server.tcp("root", "root-pw", "postgres") as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'root'").fetchone() == (
            True,
        )
    generated = admin.enable_root("")
    assert len(generated) >= 20
    server.tcp("root", generated, "postgres").close()
    admin.disable_root()
    assert admin.is_root_enabled() is False
    with pytest.raises(psycopg.OperationalError):
        server.tcp("root", generated, "postgres")
    with pytest.raises(BadRequest, match="reserved"):
        admin.create_users([UserSpec(name="root", password="pw")])


def test_restart_keeps_data_and_passwords_stay_out_of_the_log(
    new_server: Callable[..., Server],
) -> None:
    # log_statement=all would log every statement: the agent's sessions must opt out.
    server = new_server("restart", parameters={"log_statement": "all"})
    server.start()
    server.engine.lifecycle.bootstrap(server.paths, server.spec)
    password = "Never-Log-Me-42"
    server.admin.create_databases([DatabaseSpec(name="keep")])
    server.admin.create_users([UserSpec(name="keeper", password=password, databases=("keep",))])
    server.admin.enable_root("Root-Never-Logged")
    with server.tcp("keeper", password, "keep") as conn:
        conn.execute("CREATE TABLE t (v text)")
        conn.execute("INSERT INTO t VALUES ('persisted')")

    server.stop()
    assert server.engine.lifecycle.running_pid(server.paths) is None
    probe = server.engine.lifecycle.probe(server.paths, server.spec)
    assert not probe.accepting and probe.detail

    server.engine.lifecycle.configure(server.paths, server.spec)
    server.start()
    with server.tcp("keeper", password, "keep") as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("persisted",)]
    log = server.paths.log_file.read_text(errors="replace")
    assert "CREATE TABLE t" in log  # statement logging is on...
    assert password not in log and "Root-Never-Logged" not in log  # ...but not for secrets
    assert "CREATE ROLE" not in log


def test_prepare_refuses_a_root_the_engine_user_cannot_reach(
    engine: Engine, workspace: Path
) -> None:
    private = workspace / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    paths = InstancePaths(root=private / "inst", os_user="coffer")
    spec = InstanceSpec(
        instance_id="x",
        engine="postgresql",
        version=PG_VERSION,
        port=20999,
        ram_mb=256,
        vcpus=1,
        volume_gb=1,
    )
    with pytest.raises(EngineError, match=str(private)):
        engine.lifecycle.prepare(paths, spec)
    assert not paths.data_dir.exists()


def test_configure_needs_a_prepared_directory(engine: Engine, workspace: Path) -> None:
    paths = InstancePaths(root=workspace / "unprepared", os_user="coffer")
    spec = InstanceSpec(
        instance_id="x",
        engine="postgresql",
        version=PG_VERSION,
        port=20998,
        ram_mb=256,
        vcpus=1,
        volume_gb=1,
    )
    with pytest.raises(EngineError, match="not a prepared data directory"):
        engine.lifecycle.configure(paths, spec)


def test_stats_count_client_sessions_and_transactions(
    server: Server, new_server: Callable[..., Server]
) -> None:
    stats = server.engine.stats
    assert stats is not None
    server.admin.create_databases([DatabaseSpec(name="statsdb")])
    server.admin.create_users([UserSpec(name="watcher", password="w-pw-1", databases=("statsdb",))])
    before = stats.counters(server.paths, server.spec)
    assert before.kind == "transactions" and before.connections >= 0
    with server.tcp("watcher", "w-pw-1", "statsdb") as conn:
        for _ in range(25):
            conn.execute("SELECT 1")
        held = stats.counters(server.paths, server.spec)
        assert held.connections >= before.connections + 1, "the open session counts"

        def grown() -> bool:
            now = stats.counters(server.paths, server.spec)
            return now.operations >= before.operations + 25

        # PostgreSQL publishes a session's counts once it is idle (within about a second)
        wait_for(grown, 15, "the session's transactions counted")
    stopped = new_server("stats-stopped")
    with pytest.raises(EngineError, match="reading the activity counters"):
        stats.counters(stopped.paths, stopped.spec)
