"""The ``openstack database`` CLI (openstackclient with the troveclient plugin), as a user runs it.

Every command is a real ``openstack`` subprocess pointed at a real server with the
``admin_token`` auth plugin (§2.2 of the reference); results are checked against the PostgreSQL
engine itself where the engine can tell. Instances are named, and mostly addressed, by name, so
the CLI's own name resolution (``GET /instances/<name>`` → 404 → list and filter) is exercised.
Each ``openstack`` process spends about two seconds starting up, so commands that do not depend
on each other are run side by side.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.api import delete_instances
from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration

OPENSTACK = Path(sys.executable).with_name("openstack")
APP_PASSWORD = "app-secret-1"
CREATE_ARGS = (
    *("--flavor", "tiny", "--size", "1", "--databases", "shop"),
    *("--datastore", "postgresql", "--datastore-version", "15"),
)
USERS = ("--users", f"app:{APP_PASSWORD}")


def parallel(*calls: Callable[[], Any]) -> list[Any]:
    """Run independent calls side by side; their results in order (the first error is raised)."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


class Cli:
    """``openstack`` with a static token and a fixed endpoint, as one user would run it."""

    def __init__(self, creds: Credentials, timeout: float = 120) -> None:
        self.creds = creds
        self.timeout = timeout
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        self.env["LANG"] = "C.UTF-8"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(OPENSTACK), "--os-auth-type", "admin_token"]
        argv += ["--os-endpoint", self.creds.endpoint, "--os-token", self.creds.token, *args]
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=self.timeout, check=False
        )

    def ok(self, *args: str) -> str:
        res = self.run(*args)
        assert res.returncode == 0, (
            f"openstack {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
        )
        return res.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-f", "json"))

    def many(self, *commands: Sequence[str]) -> list[Any]:
        """The parsed ``-f json`` output of independent commands, run concurrently, in order."""
        return parallel(*(partial(self.json, *args) for args in commands))

    def fails(self, *args: str) -> str:
        """The error message the CLI printed for a command that must fail."""
        res = self.run(*args)
        assert res.returncode != 0, f"openstack {' '.join(args)} succeeded:\n{res.stdout}"
        return res.stderr

    def show(self, instance: str) -> dict[str, Any]:
        return dict(self.json("database", "instance", "show", instance))

    def wait_active(self, instance: str, timeout: float = 120) -> dict[str, Any]:
        end = time.monotonic() + timeout
        shown: dict[str, Any] = {}
        while time.monotonic() < end:
            shown = self.show(instance)
            assert shown["status"] != "ERROR", shown
            if shown["status"] == "ACTIVE" and shown["operating_status"] == "HEALTHY":
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{instance} not ACTIVE/HEALTHY in {timeout}s; last: {shown}")

    def wait_gone(self, instance: str, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            res = self.run("database", "instance", "show", instance)
            if res.returncode != 0:
                assert f"No instance with a name or ID of '{instance}' exists" in res.stderr
                return
            time.sleep(0.2)
        raise AssertionError(f"{instance} still shown after {timeout}s")


@pytest.fixture
def cli(admin: Credentials) -> Cli:
    assert OPENSTACK.exists(), f"{OPENSTACK} is missing: install python-openstackclient"
    return Cli(admin)


@pytest.fixture
def names(admin: Credentials) -> Iterator[set[str]]:
    """Names a test gives its instances; instances still carrying one are deleted at teardown."""
    used: set[str] = set()
    try:
        yield used
    finally:
        with admin.client() as c:
            delete_instances(c, names=used)


def create(cli: Cli, names: set[str], name: str) -> dict[str, Any]:
    names.add(name)
    created = dict(cli.json("database", "instance", "create", name, *CREATE_ARGS, *USERS))
    assert created["name"] == name
    assert created["status"] == "BUILD"
    return created


def connect(
    shown: dict[str, Any], user: str = "app", password: str = APP_PASSWORD, db: str = "shop"
) -> psycopg.Connection:
    return psycopg.connect(
        host=shown["ip"].split(",")[0].strip(),
        port=shown["port"],
        user=user,
        password=password,
        dbname=db,
        connect_timeout=5,
        autocommit=True,
    )


def scalar(conn: psycopg.Connection, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def absolute_limits(stdout: str) -> dict[str, str]:
    """``database limit list`` prints the absolute limits as a table before its own output."""
    rows = re.findall(r"^\|\s*(\S+)\s*\|\s*(\S+)\s*\|$", stdout, re.MULTILINE)
    return {k: v for k, v in rows if k != "Property"}


def test_catalog(cli: Cli) -> None:
    flavors, tiny, datastores, datastore, versions, version = cli.many(
        ("database", "flavor", "list"),
        ("database", "flavor", "show", "tiny"),
        ("datastore", "list"),
        ("datastore", "show", "postgresql"),
        ("datastore", "version", "list", "postgresql"),
        ("datastore", "version", "show", "15", "--datastore", "postgresql"),
    )
    by_name = {f["Name"]: f for f in flavors}
    assert {"tiny", "medium"} <= set(by_name)
    assert (tiny["id"], tiny["ram"]) == (by_name["tiny"]["ID"], by_name["tiny"]["RAM"])

    assert "postgresql" in [d["Name"] for d in datastores]
    assert datastore["name"] == "postgresql"
    assert datastore["default_version"] == "15"
    assert "15" in [v["Name"] for v in versions]
    assert (version["name"], version["datastore"]) == ("15", datastore["id"])
    assert f"15 ({version['id']})" in datastore["versions (id)"]

    out = cli.ok("database", "limit", "list", "-f", "json")
    limits = absolute_limits(out)
    assert limits["verb"] == "ABSOLUTE"
    assert int(limits["max_instances"]) >= 1
    assert isinstance(json.loads(out[out.index("\n[") :]), list)


def test_quotas(server: CofferServer, cli: Cli) -> None:
    project = server.new_project("osc-quota")
    pid = project.project_id
    quotas = {q["Resource"]: q for q in cli.json("database", "quota", "show", pid)}
    assert {"instances", "volumes", "backups"} <= set(quotas)
    assert quotas["instances"]["In Use"] == 0

    assert cli.json("database", "quota", "update", pid, "instances", "7") == {"instances": 7}
    quotas = {q["Resource"]: q for q in cli.json("database", "quota", "show", pid)}
    assert quotas["instances"]["Limit"] == 7

    tenant = Cli(project)
    assert absolute_limits(tenant.ok("database", "limit", "list"))["max_instances"] == "7"
    assert cli.json("database", "quota", "update", pid, "instances", "0") == {"instances": 0}
    try:
        error = tenant.fails("database", "instance", "create", "osc-over-quota", *CREATE_ARGS)
        assert "(HTTP 413)" in error and "uota" in error
    finally:
        with project.client() as c:
            delete_instances(c, names={"osc-over-quota"})


def test_instance_lifecycle(cli: Cli, names: set[str]) -> None:
    iid = create(cli, names, "osc-life")["id"]
    shown, listed = parallel(
        partial(cli.wait_active, "osc-life"), partial(cli.json, "database", "instance", "list")
    )
    assert (shown["id"], shown["datastore"], shown["datastore_version"]) == (
        iid,
        "postgresql",
        "15",
    )
    assert (shown["flavor"], shown["volume"]) == ("1", 1)
    (row,) = [i for i in listed if i["ID"] == iid]
    assert (row["Name"], row["Datastore"], row["Flavor ID"], row["Size"]) == (
        "osc-life",
        "postgresql",
        "1",
        1,
    )

    with connect(shown) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two')")
        started = scalar(conn, "SELECT pg_postmaster_start_time()")
        shared_buffers = scalar(conn, "SHOW shared_buffers")

    cli.ok("database", "instance", "restart", "osc-life")
    shown = cli.wait_active("osc-life")
    with connect(shown) as conn:
        assert scalar(conn, "SELECT pg_postmaster_start_time()") > started
        assert scalar(conn, "SELECT count(*) FROM items") == 2

    cli.ok("database", "instance", "resize", "flavor", "osc-life", "medium")
    shown = cli.wait_active("osc-life")
    assert shown["flavor"] == "3"
    with connect(shown) as conn:
        assert scalar(conn, "SHOW shared_buffers") != shared_buffers
        assert scalar(conn, "SELECT name FROM items WHERE id = 2") == "two"

    cli.ok("database", "instance", "resize", "volume", "osc-life", "2")
    assert cli.wait_active("osc-life")["volume"] == 2

    names.add("osc-life-renamed")
    cli.ok("database", "instance", "update", "osc-life", "--name", "osc-life-renamed")
    renamed, error = parallel(
        partial(cli.show, "osc-life-renamed"),
        partial(cli.fails, "database", "instance", "show", "osc-life"),
    )
    assert renamed["id"] == iid
    assert "No instance with a name or ID of 'osc-life' exists" in error

    assert iid in cli.ok("database", "instance", "delete", "osc-life-renamed")
    cli.wait_gone(iid)


def test_databases_users_and_root(cli: Cli, names: set[str]) -> None:
    x = "osc-accounts"
    db, user, root = ("database", "db"), ("database", "user"), ("database", "root")
    create(cli, names, x)
    shown = cli.wait_active(x)

    cli.ok(*db, "create", x, "extra")
    _, dbs, root_shown = parallel(
        partial(cli.ok, *user, "create", x, "bob", "bob-pw-1", "--databases", "extra"),
        partial(cli.json, *db, "list", x),
        partial(cli.json, *root, "show", x),
    )
    assert {d["Name"] for d in dbs} == {"shop", "extra"}
    assert root_shown == {"is_root_enabled": False}

    duplicate, user_rows, bob = parallel(
        partial(cli.fails, *db, "create", x, "extra"),
        partial(cli.json, *user, "list", x),
        partial(cli.json, *user, "show", x, "bob"),
    )
    assert "(HTTP 400)" in duplicate
    users = {u["Name"]: u for u in user_rows}
    assert set(users) == {"app", "bob"}
    assert (users["bob"]["Host"], users["bob"]["Databases"]) == ("%", "extra")
    assert (bob["name"], bob["host"], bob["databases"]) == ("bob", "%", [{"name": "extra"}])
    with connect(shown, user="bob", password="bob-pw-1", db="extra") as conn:
        conn.execute("CREATE TABLE t (x int)")

    cli.ok(*user, "grant", "access", x, "bob", "shop")
    assert {d["Name"] for d in cli.json(*user, "show", "access", x, "bob")} == {"shop", "extra"}
    cli.ok(*user, "revoke", "access", x, "bob", "shop")
    assert {d["Name"] for d in cli.json(*user, "show", "access", x, "bob")} == {"extra"}

    cli.ok(*user, "update", "attributes", x, "bob", "--new_password", "bob-pw-2")
    with connect(shown, user="bob", password="bob-pw-2", db="extra") as conn:
        assert scalar(conn, "SELECT count(*) FROM t") == 0
    with pytest.raises(psycopg.OperationalError):
        connect(shown, user="bob", password="bob-pw-1", db="extra")

    enabled = cli.json(*root, "enable", x)
    assert enabled["name"] == "root" and enabled["password"]
    with connect(shown, user="root", password=enabled["password"], db="postgres") as conn:
        assert scalar(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is True
    assert cli.json(*root, "show", x) == {"is_root_enabled": True}
    cli.ok(*root, "disable", x)
    assert cli.json(*root, "show", x) == {"is_root_enabled": False}

    cli.ok(*user, "delete", x, "bob")
    missing, users, _ = parallel(
        partial(cli.fails, *user, "show", x, "bob"),
        partial(cli.json, *user, "list", x),
        partial(cli.ok, *db, "delete", x, "extra"),
    )
    assert "(HTTP 404)" in missing
    assert [u["Name"] for u in users] == ["app"]
    assert [d["Name"] for d in cli.json(*db, "list", x)] == ["shop"]
    with connect(shown) as conn:
        assert scalar(conn, "SELECT count(*) FROM pg_database WHERE datname = 'extra'") == 0

    cli.ok("database", "instance", "delete", x)
    cli.wait_gone(x)
