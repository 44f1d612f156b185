"""The MariaDB engine against real MariaDB 10.11 servers, each run as its own OS account.

Engine directories live under a short, world-traversable ``/tmp/cfmy-*`` root (pytest's
``tmp_path`` is private to root). The template is owned by the ``coffer`` engine user;
every instance gets a fresh account made the way the agent makes them
(``coffer.agent.osusers``). Finalizers stop or kill every server a test started, then
remove the accounts and the root, whatever happened.
"""

from __future__ import annotations

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

import pymysql  # type: ignore[import-untyped,unused-ignore]
import pytest

from coffer.agent import osusers
from coffer.contracts.engine import DatabaseSpec, InstanceSpec, UserSpec, UserUpdate
from coffer.engines.base import Admin, Engine, InstancePaths
from coffer.engines.mariadb import build_engine
from coffer.engines.mariadb.catalog import CATALOG, parse_size, worst_case_memory
from coffer.engines.mariadb.config import server_id
from coffer.errors import BadRequest, EngineError, NotFound
from tests.support import engine_harness

ENGINE_USER = "coffer"
VERSION = "10.11"
MARIADBD = Path("/usr/sbin/mariadbd")

# its tests share one engine server: keep them on one xdist worker
pytestmark = engine_harness.engine_marks(
    "test_mariadb_engine", MARIADBD, "MariaDB is not installed"
)

ACCESS_DENIED = 1045
DB_ACCESS_DENIED = 1044
READ_ONLY = 1290
HOST_NOT_ALLOWED = 1130  # no account at all for the client's address


free_port = engine_harness.PortRange(21000, 21999).take


class Server:
    """One MariaDB instance driven the way the agent drives it, as its own OS account."""

    def __init__(self, engine: Engine, root: Path, **spec_values: Any) -> None:
        self.engine = engine
        self.instance_id = f"my-{uuid.uuid4()}"
        values: dict[str, Any] = {
            "instance_id": self.instance_id,
            "engine": "mariadb",
            "version": VERSION,
            "port": free_port(),
            "ram_mb": 256,
            "vcpus": 1,
            "volume_gb": 1,
        }
        values.update(spec_values)
        self.spec = InstanceSpec.model_validate(values)
        self.os_user = osusers.account_name(self.instance_id)
        self.paths = InstancePaths(root=root, os_user=self.os_user)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def admin(self) -> Admin:
        return self.engine.admin(self.paths, self.spec)

    def create_account(self, owner_dir: Path) -> None:
        osusers.ensure_account(self.instance_id, owner_dir)

    def prepare_and_configure(self) -> None:
        self.engine.lifecycle.prepare(self.paths, self.spec)
        self.engine.lifecycle.configure(self.paths, self.spec)

    def start(self) -> None:
        argv = self.engine.lifecycle.command(self.paths, self.spec)
        account = pwd.getpwnam(self.os_user)
        with open(self.paths.log_file, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                user=account.pw_uid,
                group=account.pw_gid,
                extra_groups=[],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(self.paths.root),
                env={"HOME": "/nonexistent", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
        self.wait_accepting()

    def wait_accepting(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"mariadbd exited {self.process.returncode}: {self.log_tail()}")
            if self.engine.lifecycle.probe(self.paths, self.spec).accepting:
                return
            time.sleep(0.02)
        pytest.fail(f"mariadbd did not accept connections: {self.log_tail()}")

    def stop(self) -> None:
        """Normal shutdown with the engine's stop signal; SIGKILL the group if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(self.engine.lifecycle.stop_signal)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self) -> str:
        try:
            return self.paths.log_file.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def tcp(self, user: str, password: str, database: str | None = None) -> Any:
        return pymysql.connect(
            host="127.0.0.1",
            port=self.spec.port,
            user=user,
            password=password,
            database=database,
            connect_timeout=5,
            autocommit=True,
        )

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run ``sql`` as the agent does (root over the private socket)."""
        conn = pymysql.connect(
            unix_socket=str(self.paths.run_dir / "mariadbd.sock"), user="root", autocommit=True
        )
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        finally:
            conn.close()


def cleanup_steps(server: Server) -> list[Callable[[], object]]:
    """Stop ``server`` (SIGKILL if it hangs), then remove its OS account."""
    return [server.stop, lambda: osusers.remove_account(server.instance_id)]


def run(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def refused(code: int | set[int], action: Callable[[], object]) -> None:
    """``action`` fails with MariaDB error ``code`` (or one of them)."""
    with pytest.raises(pymysql.err.MySQLError) as failure:
        action()
    codes = code if isinstance(code, set) else {code}
    assert failure.value.args[0] in codes, failure.value.args


workspace = engine_harness.workspace_fixture("cfmy-")
engine = engine_harness.engine_fixture(build_engine, ENGINE_USER)


def bare_server_fixture(take_port: Callable[[], int]) -> Any:
    """A module-scoped ``new_server`` fixture for other modules: a factory of servers on
    ports from ``take_port``, with their own OS accounts and nothing on disk yet; all are
    stopped and their accounts removed at the end, even after failures."""

    @pytest.fixture(scope="module", name="new_server")
    def new_server(workspace: Path, engine: Engine) -> Iterator[Callable[[str], Server]]:
        fleet = engine_harness.Fleet(cleanup_steps)

        def make(name: str) -> Server:
            server = fleet.add(Server(engine, workspace / name, port=take_port()))
            server.create_account(workspace)
            return server

        yield make
        fleet.close()

    return new_server


@pytest.fixture(scope="module")
def new_server(workspace: Path, engine: Engine) -> Iterator[Callable[..., Server]]:
    """Factory of prepared, configured, stopped servers, each with its own OS account.
    All are stopped and their accounts removed at the end, even after failures."""
    fleet = engine_harness.Fleet(cleanup_steps)

    def make(name: str, **spec_values: Any) -> Server:
        server = fleet.add(Server(engine, workspace / name, **spec_values))
        server.create_account(workspace)
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
    assert engine.lifecycle.installed_versions() == [VERSION]


def test_prepare_makes_private_files_owned_by_the_instance_account(
    server: Server, workspace: Path
) -> None:
    account = pwd.getpwnam(server.os_user)
    assert account.pw_uid != pwd.getpwnam(ENGINE_USER).pw_uid
    for directory in (server.paths.data_dir, server.paths.run_dir):
        info = directory.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (account.pw_uid, 0o700)
    config = (server.paths.root / "my.cnf").stat()
    assert (config.st_uid, stat.S_IMODE(config.st_mode)) == (account.pw_uid, 0o600)
    assert (server.paths.data_dir / "mysql" / "global_priv.MAD").is_file()
    assert not list(server.paths.root.glob(".*.partial"))
    template = workspace / "templates" / f"mariadb-{VERSION}"
    assert template.stat().st_uid == pwd.getpwnam(ENGINE_USER).pw_uid


def test_the_server_runs_on_coffer_settings_alone(server: Server) -> None:
    (row,) = server.query(
        "SELECT @@GLOBAL.port, @@GLOBAL.socket, @@GLOBAL.datadir, @@GLOBAL.skip_name_resolve,"
        " @@GLOBAL.server_id, @@GLOBAL.log_bin, @@GLOBAL.binlog_format,"
        " @@GLOBAL.character_set_server, @@GLOBAL.innodb_buffer_pool_size,"
        " @@GLOBAL.max_connections, @@GLOBAL.innodb_log_file_size, @@GLOBAL.bind_address,"
        " @@GLOBAL.log_bin_trust_function_creators, @@GLOBAL.tmpdir"
    )
    assert row == (
        server.spec.port,
        str(server.paths.run_dir / "mariadbd.sock"),
        str(server.paths.data_dir) + "/",
        1,
        server_id(server.instance_id),
        1,
        "ROW",
        "utf8mb4",
        parse_size(CATALOG.memory_settings(256)["innodb_buffer_pool_size"]),  # kept exactly
        int(CATALOG.memory_settings(256)["max_connections"]),
        16 * 1024 * 1024,
        "127.0.0.1",
        1,
        str(server.paths.run_dir),
    )
    assert server.query("SELECT @@GLOBAL.have_symlink") == [("DISABLED",)]
    # mariadbd reads Coffer's file and nothing else (no /etc/mysql, no ~/.my.cnf)
    argv = server.engine.lifecycle.command(server.paths, server.spec)
    printed = subprocess.run(
        [*argv, "--print-defaults"], capture_output=True, text=True, check=True
    ).stdout.split()
    options = [word for word in printed if word.startswith("--")]
    config = (server.paths.root / "my.cnf").read_text()
    settings = [line.split(" = ")[0] for line in config.splitlines() if " = " in line]
    assert [option[2:].split("=")[0] for option in options] == settings
    assert f"--port={server.spec.port}" in options


def test_prepare_and_configure_are_idempotent(server: Server) -> None:
    before = (server.paths.root / "my.cnf").read_text()
    server.prepare_and_configure()
    assert (server.paths.root / "my.cnf").read_text() == before


def test_bootstrap_leaves_only_the_socket_root(server: Server) -> None:
    server.engine.lifecycle.bootstrap(server.paths, server.spec)
    accounts = server.query("SELECT User, Host FROM mysql.user ORDER BY User")
    assert accounts == [("mariadb.sys", "localhost"), ("root", "localhost")]
    (grants,) = server.query("SHOW GRANTS FOR root@localhost")[0]
    assert "unix_socket" in grants and "mysql_native_password" not in grants
    for password in ("", "root", "invalid"):
        refused(
            {ACCESS_DENIED, HOST_NOT_ALLOWED},
            lambda password=password: server.tcp("root", password),
        )


def test_running_pid_finds_the_server(server: Server, workspace: Path) -> None:
    assert server.process is not None
    assert server.engine.lifecycle.running_pid(server.paths) == server.process.pid
    elsewhere = InstancePaths(root=workspace / "nope", os_user=server.os_user)
    assert server.engine.lifecycle.running_pid(elsewhere) is None


def test_user_reaches_its_database_over_tcp(server: Server) -> None:
    server.admin.create_databases([DatabaseSpec(name="shop")])
    server.admin.create_users([UserSpec(name="app", password="s3cret'pw", databases=("shop",))])
    conn = server.tcp("app", "s3cret'pw", "shop")
    try:
        run(conn, "CREATE TABLE items (id INT PRIMARY KEY, label TEXT)")
        run(conn, "INSERT INTO items VALUES (1, 'one'), (2, 'two')")
        assert run(conn, "SELECT label FROM items ORDER BY id") == [("one",), ("two",)]
        assert run(conn, "SELECT CURRENT_USER()") == [("app@%",)]
    finally:
        conn.close()
    assert "shop" in [db.name for db in server.admin.list_databases()]
    assert server.admin.get_user("app", "%").databases == ("shop",)


def test_wrong_password_and_no_privileges_beyond_the_database(server: Server) -> None:
    server.admin.create_databases([DatabaseSpec(name="vault")])
    server.admin.create_users([UserSpec(name="guard", password="right", databases=("vault",))])
    refused(ACCESS_DENIED, lambda: server.tcp("guard", "wrong", "vault"))
    (grants,) = zip(*server.query("SHOW GRANTS FOR 'guard'@'%'"), strict=True)
    assert grants[0].startswith("GRANT USAGE ON *.* TO `guard`@`%`")
    assert grants[1] == "GRANT ALL PRIVILEGES ON `vault`.* TO `guard`@`%`"
    assert len(grants) == 2


def test_users_reach_only_granted_databases(server: Server) -> None:
    admin = server.admin
    admin.create_databases(
        [DatabaseSpec(name="alpha"), DatabaseSpec(name="my_db"), DatabaseSpec(name="myXdb")]
    )
    admin.create_users([UserSpec(name="ann", password="pw-ann")])
    assert admin.list_access("ann", "%") == []
    refused(DB_ACCESS_DENIED, lambda: server.tcp("ann", "pw-ann", "alpha"))

    admin.grant_access("ann", "%", ["alpha", "my_db"])
    admin.grant_access("ann", "%", ["alpha"])  # idempotent
    assert admin.list_access("ann", "%") == ["alpha", "my_db"]
    server.tcp("ann", "pw-ann", "my_db").close()
    # '_' is a wildcard in database grants: granting my_db must not open myXdb
    refused(DB_ACCESS_DENIED, lambda: server.tcp("ann", "pw-ann", "myXdb"))

    admin.revoke_access("ann", "%", "alpha")
    admin.revoke_access("ann", "%", "alpha")  # idempotent
    assert admin.list_access("ann", "%") == ["my_db"]
    refused(DB_ACCESS_DENIED, lambda: server.tcp("ann", "pw-ann", "alpha"))
    listed = {(user.name, user.host): user.databases for user in admin.list_users()}
    assert listed[("ann", "%")] == ("my_db",)
    assert not {name for name, _ in listed} & {"root", "mariadb.sys", "mysql", "PUBLIC"}


def test_host_patterns(server: Server) -> None:
    admin = server.admin
    admin.create_databases([DatabaseSpec(name="hosted")])
    admin.create_users(
        [
            UserSpec(name="local", host="127.0.0.%", password="pw1", databases=("hosted",)),
            UserSpec(name="local", host="10.0.0.%", password="pw2", databases=("hosted",)),
            UserSpec(name="netmask", host="127.0.0.0/255.0.0.0", password="pw3"),
            UserSpec(name="exact", host="127.0.0.1", password="pw4"),
            UserSpec(name="faraway", host="192.0.2.7", password="pw5"),
        ]
    )
    conn = server.tcp("local", "pw1", "hosted")
    assert run(conn, "SELECT CURRENT_USER()") == [("local@127.0.0.%",)]
    conn.close()
    refused(ACCESS_DENIED, lambda: server.tcp("local", "pw2", "hosted"))
    server.tcp("netmask", "pw3").close()
    server.tcp("exact", "pw4").close()
    refused(ACCESS_DENIED, lambda: server.tcp("faraway", "pw5"))
    hosts = {user.host for user in admin.list_users() if user.name == "local"}
    assert hosts == {"127.0.0.%", "10.0.0.%"}
    assert admin.get_user("local", "10.0.0.%").databases == ("hosted",)

    admin.delete_user("local", "10.0.0.%")
    assert admin.get_user("local", "127.0.0.%").databases == ("hosted",)
    with pytest.raises(NotFound, match=r"'local'@'10\.0\.0\.%' does not exist"):
        admin.get_user("local", "10.0.0.%")
    with pytest.raises(BadRequest, match="host name"):
        admin.create_users([UserSpec(name="dns", host="db.example.com", password="pw")])
    with pytest.raises(BadRequest, match="netmask"):
        admin.create_users([UserSpec(name="cidr", host="10.0.0.0/24", password="pw")])


def test_duplicates_unknowns_and_bad_input_change_nothing(server: Server) -> None:
    admin = server.admin
    admin.create_databases([DatabaseSpec(name="dup")])
    admin.create_users([UserSpec(name="dupuser", password="pw")])
    with pytest.raises(BadRequest, match="database 'dup' already exists"):
        admin.create_databases([DatabaseSpec(name="fresh"), DatabaseSpec(name="dup")])
    with pytest.raises(BadRequest, match="user 'dupuser'@'%' already exists"):
        admin.create_users(
            [UserSpec(name="fresh", password="pw"), UserSpec(name="dupuser", password="x")]
        )
    with pytest.raises(NotFound, match="database 'missing' does not exist"):
        admin.create_users([UserSpec(name="fresh", password="pw", databases=("missing",))])
    with pytest.raises(BadRequest, match="listed twice"):
        admin.create_databases([DatabaseSpec(name="twice"), DatabaseSpec(name="twice")])
    with pytest.raises(BadRequest, match="listed twice"):
        admin.create_users([UserSpec(name="tw", password="a"), UserSpec(name="tw", password="b")])
    with pytest.raises(BadRequest, match="'x`; DROP USER app; --'"):
        admin.create_users([UserSpec(name="x`; DROP USER app; --", password="pw")])
    with pytest.raises(BadRequest, match="reserved"):
        admin.delete_database("mysql")
    for hidden in ("root", "mariadb.sys", "PUBLIC", "coffer_admin"):
        with pytest.raises(BadRequest):
            admin.delete_user(hidden, "localhost")
        with pytest.raises(BadRequest):
            admin.get_user(hidden, "%")
    names = [db.name for db in admin.list_databases()]
    assert "fresh" not in names and "twice" not in names
    assert "fresh" not in [user.name for user in admin.list_users()]
    assert server.query("SELECT COUNT(*) FROM mysql.user WHERE User = 'root'") == [(1,)]
    for call in (
        lambda: admin.get_user("ghost", "%"),
        lambda: admin.delete_user("ghost", "%"),
        lambda: admin.list_access("ghost", "%"),
        lambda: admin.grant_access("dupuser", "%", ["nodb"]),
        lambda: admin.revoke_access("dupuser", "%", "nodb"),
        lambda: admin.delete_database("nodb"),
        lambda: admin.get_user("dupuser", "10.1.1.1"),
    ):
        with pytest.raises(NotFound):
            call()


def test_character_sets_and_collations(server: Server) -> None:
    admin = server.admin
    admin.create_databases(
        [
            DatabaseSpec(name="plain"),
            DatabaseSpec(name="legacy", character_set="latin1"),
            DatabaseSpec(name="sorted", character_set="utf8mb4", collate="utf8mb4_bin"),
        ]
    )
    by_name = {db.name: db for db in admin.list_databases()}
    assert (by_name["plain"].character_set, by_name["plain"].collate) == (
        "utf8mb4",
        "utf8mb4_general_ci",
    )
    assert by_name["legacy"].character_set == "latin1"
    assert by_name["sorted"].collate == "utf8mb4_bin"
    with pytest.raises(BadRequest, match="nope_ci"):
        admin.create_databases(
            [DatabaseSpec(name="first_ok"), DatabaseSpec(name="bad", collate="nope_ci")]
        )
    with pytest.raises(BadRequest, match="not valid for CHARACTER SET"):
        admin.create_databases(
            [DatabaseSpec(name="mismatch", character_set="latin1", collate="utf8mb4_bin")]
        )
    names = [db.name for db in admin.list_databases()]
    assert "first_ok" not in names and "bad" not in names and "mismatch" not in names


def test_update_user_renames_moves_host_and_changes_password(server: Server) -> None:
    admin = server.admin
    admin.create_databases([DatabaseSpec(name="books")])
    admin.create_users([UserSpec(name="old_name", password="old-pw", databases=("books",))])
    admin.update_user(
        "old_name", "%", UserUpdate(name="new_name", host="127.0.0.1", password="new-pw")
    )
    conn = server.tcp("new_name", "new-pw", "books")
    assert run(conn, "SELECT CURRENT_USER()") == [("new_name@127.0.0.1",)]
    conn.close()
    refused(ACCESS_DENIED, lambda: server.tcp("new_name", "old-pw", "books"))
    with pytest.raises(NotFound):
        admin.get_user("old_name", "%")
    assert admin.get_user("new_name", "127.0.0.1").databases == ("books",)
    admin.create_users([UserSpec(name="other", password="pw")])
    with pytest.raises(BadRequest, match="'other'@'%' already exists"):
        admin.update_user("new_name", "127.0.0.1", UserUpdate(name="other", host="%"))
    with pytest.raises(BadRequest, match="nothing to change"):
        admin.update_user("new_name", "127.0.0.1", UserUpdate())
    with pytest.raises(BadRequest, match="reserved"):
        admin.update_user("new_name", "127.0.0.1", UserUpdate(name="root"))


def test_delete_user_ends_its_sessions_and_delete_database_its_grants(server: Server) -> None:
    admin = server.admin
    admin.create_databases([DatabaseSpec(name="scratch")])
    admin.create_users([UserSpec(name="temp", password="pw", databases=("scratch",))])
    session = server.tcp("temp", "pw", "scratch")
    admin.delete_user("temp", "%")
    assert "temp" not in [user.name for user in admin.list_users()]
    with pytest.raises(pymysql.err.OperationalError):
        run(session, "SELECT 1")
    session.close()
    with pytest.raises(NotFound):
        admin.delete_user("temp", "%")

    admin.create_users([UserSpec(name="lingers", password="pw", databases=("scratch",))])
    session = server.tcp("lingers", "pw", "scratch")
    try:
        run(session, "CREATE TABLE t (x INT)")
        admin.delete_database("scratch")
    finally:
        session.close()
    assert "scratch" not in [db.name for db in admin.list_databases()]
    assert admin.list_access("lingers", "%") == []
    admin.create_databases([DatabaseSpec(name="scratch")])
    refused(DB_ACCESS_DENIED, lambda: server.tcp("lingers", "pw", "scratch"))


def test_root_enable_and_disable(server: Server) -> None:
    admin = server.admin
    assert admin.is_root_enabled() is False
    with pytest.raises(NotFound, match="root is not enabled"):
        admin.disable_root()
    assert admin.enable_root("root-pw") == "root-pw"
    assert admin.is_root_enabled() is True
    conn = server.tcp("root", "root-pw")
    try:
        assert run(conn, "SELECT CURRENT_USER()") == [("root@%",)]
        (grants,) = run(conn, "SHOW GRANTS")[0]
        assert "WITH GRANT OPTION" in grants and "CREATE USER" in grants
        for withheld in ("SUPER", "READ_ONLY ADMIN", "BINLOG ADMIN", "FILE", "SHUTDOWN"):
            assert withheld not in grants
        run(conn, "CREATE DATABASE rootdb")
        run(conn, "CREATE TABLE rootdb.t (x INT)")
        # what keeps a replica safe: read_only stops the tenant's root too
        server.query("SET GLOBAL read_only = ON")
        try:
            refused(READ_ONLY, lambda: run(conn, "INSERT INTO rootdb.t VALUES (1)"))
        finally:
            server.query("SET GLOBAL read_only = OFF")
        run(conn, "INSERT INTO rootdb.t VALUES (1)")
    finally:
        conn.close()
    assert "root" not in [user.name for user in admin.list_users()]

    generated = admin.enable_root("")
    assert len(generated) >= 20
    lingering = server.tcp("root", generated)
    refused(ACCESS_DENIED, lambda: server.tcp("root", "root-pw"))
    admin.disable_root()
    assert admin.is_root_enabled() is False
    with pytest.raises(pymysql.err.OperationalError):
        run(lingering, "SELECT 1")
    lingering.close()
    # 1698 rather than 1045 when the only root left (localhost) is socket-only
    refused({ACCESS_DENIED, 1698}, lambda: server.tcp("root", generated))
    assert server.engine.lifecycle.probe(server.paths, server.spec).accepting
    with pytest.raises(BadRequest, match="reserved"):
        admin.create_users([UserSpec(name="root", password="pw")])


def test_apply_parameters_changes_the_running_server(server: Server) -> None:
    lifecycle = server.engine.lifecycle
    tuned = server.spec.model_copy(
        update={
            "parameters": {
                "max_connections": 150,
                "long_query_time": 0.5,
                "slow_query_log": True,
                "character_set_server": "latin1",
                "sql_mode": "STRICT_ALL_TABLES,NO_ZERO_DATE",
                "innodb_log_file_size": 64 * 1024 * 1024,
            }
        }
    )
    lifecycle.configure(server.paths, tuned)
    lifecycle.apply_parameters(server.paths, tuned)
    globals_sql = (
        "SELECT @@GLOBAL.max_connections, @@GLOBAL.long_query_time, @@GLOBAL.slow_query_log,"
        " @@GLOBAL.character_set_server, @@GLOBAL.sql_mode, @@GLOBAL.innodb_log_file_size"
    )
    assert server.query(globals_sql) == [
        (150, 0.5, 1, "latin1", "STRICT_ALL_TABLES,NO_ZERO_DATE", 16 * 1024 * 1024)
    ]
    server.admin.create_databases([DatabaseSpec(name="tuning")])
    server.admin.create_users([UserSpec(name="tuner", password="tuner-pw", databases=("tuning",))])
    conn = server.tcp("tuner", "tuner-pw", "tuning")
    assert run(conn, "SELECT @@max_connections, @@long_query_time") == [(150, 0.5)]
    conn.close()
    assert "innodb_log_file_size = 67108864" in (server.paths.root / "my.cnf").read_text()

    lifecycle.configure(server.paths, server.spec)
    lifecycle.apply_parameters(server.paths, server.spec)
    (row,) = server.query(globals_sql)
    assert row[:4] == (int(CATALOG.memory_settings(256)["max_connections"]), 10.0, 0, "utf8mb4")
    assert row[4].split(",") == [  # MariaDB's own default again
        "STRICT_TRANS_TABLES",
        "ERROR_FOR_DIVISION_BY_ZERO",
        "NO_AUTO_CREATE_USER",
        "NO_ENGINE_SUBSTITUTION",
    ]


def test_restart_keeps_data_and_passwords_stay_out_of_every_log(
    new_server: Callable[..., Server],
) -> None:
    # the slow log with long_query_time=0 records every statement: but not the agent's
    params = {"slow_query_log": True, "long_query_time": 0.0}
    server = new_server("restart", parameters=params)
    server.start()
    server.engine.lifecycle.bootstrap(server.paths, server.spec)
    password = "Never-Log-Me-42"
    server.admin.create_databases([DatabaseSpec(name="keep")])
    server.admin.create_users([UserSpec(name="keeper", password=password, databases=("keep",))])
    server.admin.update_user("keeper", "%", UserUpdate(password=password + "x"))
    server.admin.enable_root("Root-Never-Logged")
    conn = server.tcp("keeper", password + "x", "keep")
    run(conn, "CREATE TABLE t (v TEXT)")
    run(conn, "INSERT INTO t VALUES ('persisted')")
    conn.close()

    server.stop()
    assert server.engine.lifecycle.running_pid(server.paths) is None
    probe = server.engine.lifecycle.probe(server.paths, server.spec)
    assert not probe.accepting and probe.detail

    server.spec = server.spec.model_copy(
        update={"parameters": {**params, "innodb_log_file_size": 48 * 1024 * 1024}}
    )
    server.engine.lifecycle.configure(server.paths, server.spec)
    server.start()
    conn = server.tcp("keeper", password + "x", "keep")
    assert run(conn, "SELECT v FROM t") == [("persisted",)]
    conn.close()
    assert server.query("SELECT @@GLOBAL.innodb_log_file_size") == [(48 * 1024 * 1024,)]

    slow_log = (server.paths.data_dir / "slow.log").read_text(errors="replace")
    assert "CREATE TABLE t" in slow_log  # statement logging is on...
    binlogs = sorted(server.paths.data_dir.glob("mariadb-bin.0*"))
    decoded = subprocess.run(
        ["mariadb-binlog", *map(str, binlogs)], capture_output=True, text=True, check=True
    ).stdout
    assert "CREATE USER" in decoded  # ...and the binary log has the accounts...
    for text in (slow_log, decoded, server.log_tail()):
        for secret in (password, "Root-Never-Logged"):  # ...but never a password
            assert secret not in text


def test_prepare_refuses_a_root_the_instance_account_cannot_reach(
    engine: Engine, workspace: Path, server: Server
) -> None:
    private = workspace / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    paths = InstancePaths(root=private / "inst", os_user=server.os_user)
    with pytest.raises(EngineError, match=str(private)):
        engine.lifecycle.prepare(paths, server.spec)
    assert not paths.data_dir.exists()


def test_configure_needs_a_prepared_directory(
    engine: Engine, workspace: Path, server: Server
) -> None:
    paths = InstancePaths(root=workspace / "unprepared", os_user=server.os_user)
    with pytest.raises(EngineError, match="not a prepared data directory"):
        engine.lifecycle.configure(paths, server.spec)


def test_a_512_mb_instance_runs_with_its_sized_memory_settings(
    new_server: Callable[..., Server],
) -> None:
    server = new_server("ram512", ram_mb=512)
    server.start()
    sized = CATALOG.memory_settings(512)
    names = sorted(sized)
    switches = {"ON": 1, "OFF": 0}
    expected = {n: switches[v] if v in switches else parse_size(v) for n, v in sized.items()}
    (row,) = server.query("SELECT " + ", ".join(f"@@GLOBAL.{name}" for name in names))
    assert dict(zip(names, row, strict=True)) == expected
    assert expected["max_connections"] == 50 and expected["performance_schema"] == 0
    # an idle server is far inside the bound its settings promise
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
    assert rss_kib * 1024 < worst_case_memory(sized) <= 512 * 1024 * 1024 * 9 // 10

    # a group's tmp_table_size takes effect: max_heap_table_size (which caps it) follows
    lifecycle = server.engine.lifecycle
    tuned = server.spec.model_copy(update={"parameters": {"tmp_table_size": 64 * 1024 * 1024}})
    lifecycle.apply_parameters(server.paths, tuned)
    heap_sql = "SELECT @@GLOBAL.tmp_table_size, @@GLOBAL.max_heap_table_size"
    assert server.query(heap_sql) == [(64 * 1024 * 1024, 64 * 1024 * 1024)]
    lifecycle.apply_parameters(server.paths, server.spec)
    assert server.query(heap_sql) == [(expected["tmp_table_size"],) * 2]


def test_stats_count_sessions_and_queries(
    server: Server, new_server: Callable[..., Server]
) -> None:
    stats = server.engine.stats
    assert stats is not None
    server.admin.create_databases([DatabaseSpec(name="statsdb")])
    server.admin.create_users([UserSpec(name="watcher", password="w-pw-1", databases=("statsdb",))])
    before = stats.counters(server.paths, server.spec)
    assert before.kind == "queries"
    conn = server.tcp("watcher", "w-pw-1", "statsdb")
    try:
        for _ in range(25):
            run(conn, "SELECT 1")
        during = stats.counters(server.paths, server.spec)
    finally:
        conn.close()
    assert during.connections >= before.connections + 1, "the open session counts"
    assert during.operations >= before.operations + 25
    stopped = new_server("stats-stopped")
    with pytest.raises(EngineError, match="reading the activity counters"):
        stats.counters(stopped.paths, stopped.spec)
