"""MariaDB and Redis through the ``openstack database`` CLI, as a user runs it.

The companion of ``test_openstack_cli.py`` (whose ``Cli`` helper, fixtures and conventions
this reuses): every command is a real ``openstack`` subprocess against a real server, and
results are checked against the engine itself (PyMySQL, redis-py) where it can tell.
Commands that do not depend on each other run side by side; commands that change an
instance's task (attach, detach, restart, resize) run alone, since account operations are
refused while a task is in progress.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from typing import Any

import pymysql
import pytest
import redis

from tests.e2e import test_openstack_cli as osc
from tests.e2e.test_openstack_cli import APP_PASSWORD, USERS, Cli, parallel
from tests.support.api import delete_configurations, delete_instances, flavor_id
from tests.support.processes import Credentials, wait_for

pytestmark = pytest.mark.integration

cli = osc.cli
names = osc.names

MARIADB = ("--datastore", "mariadb", "--datastore-version", "10.11")
REDIS = ("--datastore", "redis", "--datastore-version", "7.0")
DB, USER, ROOT = ("database", "db"), ("database", "user"), ("database", "root")
CONFIG, INSTANCE = ("database", "configuration"), ("database", "instance")


@pytest.fixture
def groups(admin: Credentials, names: set[str]) -> Iterator[set[str]]:
    """Names a test gives its configuration groups; groups still carrying one are deleted at
    teardown, after the test's instances (a group still attached cannot be deleted)."""
    used: set[str] = set()
    try:
        yield used
    finally:
        with admin.client() as c:
            delete_instances(c, names=names)
            delete_configurations(c, names=used)


def address(shown: dict[str, Any]) -> tuple[str, int]:
    return shown["ip"].split(",")[0].strip(), int(shown["port"])


def create_with_group(
    cli: Cli, instance: tuple[str, ...], group: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``instance create`` and ``configuration create`` side by side (they are independent)."""
    created, made = parallel(
        partial(cli.json, *INSTANCE, "create", *instance),
        partial(cli.json, *CONFIG, "create", *group),
    )
    assert (created["name"], created["status"]) == (instance[0], "BUILD")
    assert made["name"] == group[0]
    assert json.loads(made["values"]) == json.loads(group[1])
    return dict(created), dict(made)


# MariaDB -------------------------------------------------------------------------------------


def mysql(
    shown: dict[str, Any], user: str = "app", password: str = APP_PASSWORD, db: str | None = "shop"
) -> pymysql.Connection:
    host, port = address(shown)
    return pymysql.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        database=db,
        autocommit=True,
        connect_timeout=5,
    )


def rows(conn: pymysql.Connection, sql: str) -> tuple[tuple[Any, ...], ...]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return tuple(cur.fetchall())


def global_value(shown: dict[str, Any], name: str) -> int:
    with mysql(shown) as conn:
        return int(rows(conn, f"SELECT @@GLOBAL.{name}")[0][0])


def uptime(shown: dict[str, Any]) -> int:
    with mysql(shown) as conn:
        return int(rows(conn, "SHOW GLOBAL STATUS LIKE 'Uptime'")[0][1])


def test_mariadb(cli: Cli, admin: Credentials, names: set[str], groups: set[str]) -> None:
    x, cfg = "osc-mariadb", "osc-mariadb-cfg"
    bob = ("bob", "--host", "127.0.0.%")
    with admin.client() as c:
        small, medium = flavor_id(c, "small"), flavor_id(c, "medium")
    names.add(x)
    groups.add(cfg)
    _, group = create_with_group(
        cli,
        (x, "--flavor", small, "--size", "1", *MARIADB, "--databases", "shop", *USERS),
        (cfg, json.dumps({"max_connections": 123}), *MARIADB),
    )
    assert (group["datastore_name"], group["datastore_version_name"]) == ("mariadb", "10.11")

    shown = cli.wait_active(x)
    assert (shown["datastore"], shown["datastore_version"]) == ("mariadb", "10.11")
    assert (shown["flavor"], shown["volume"]) == (small, 1)
    with mysql(shown) as conn:
        rows(conn, "CREATE TABLE items (id INT PRIMARY KEY, name TEXT)")
        rows(conn, "INSERT INTO items VALUES (1, 'one'), (2, 'two')")
    buffer_pool = global_value(shown, "innodb_buffer_pool_size")

    # databases, a user with a host, root ----------------------------------------------------
    *_, root_shown = parallel(
        partial(cli.ok, *DB, "create", x, "extra"),
        partial(cli.ok, *USER, "create", x, "bob", "bob-pw-1", *bob[1:], "--databases", "shop"),
        partial(cli.json, *ROOT, "show", x),
    )
    assert root_shown == {"is_root_enabled": False}
    dbs, user_rows, bob_shown, other_bob, duplicate, group_shown = parallel(
        partial(cli.json, *DB, "list", x),
        partial(cli.json, *USER, "list", x),
        partial(cli.json, *USER, "show", x, *bob),
        partial(cli.fails, *USER, "show", x, "bob"),
        partial(cli.fails, *DB, "create", x, "extra"),
        partial(cli.json, *CONFIG, "show", cfg),
    )
    assert {d["Name"] for d in dbs} == {"shop", "extra"}
    users = {(u["Name"], u["Host"]): u["Databases"] for u in user_rows}
    assert users == {("app", "%"): "shop", ("bob", "127.0.0.%"): "shop"}
    assert (bob_shown["name"], bob_shown["host"]) == ("bob", "127.0.0.%")
    assert bob_shown["databases"] == [{"name": "shop"}]
    assert "(HTTP 404)" in other_bob, "bob@% is another account than bob@127.0.0.%"
    assert "(HTTP 400)" in duplicate and "extra" in duplicate
    assert group_shown["id"] == group["id"]
    assert json.loads(group_shown["values"]) == {"max_connections": 123}
    with mysql(shown, "bob", "bob-pw-1") as conn:
        assert rows(conn, "SELECT name FROM items ORDER BY id") == (("one",), ("two",))
    with pytest.raises(pymysql.err.OperationalError):
        mysql(shown, "bob", "bob-pw-1", db="extra")

    _, enabled = parallel(
        partial(cli.ok, *USER, "grant", "access", x, *bob, "extra"),
        partial(cli.json, *ROOT, "enable", x),
    )
    assert enabled["name"] == "root" and enabled["password"]
    with mysql(shown, "bob", "bob-pw-1", db="extra") as conn:
        rows(conn, "CREATE TABLE t (x INT)")
    with mysql(shown, "root", enabled["password"], db=None) as conn:
        assert ("extra",) in rows(conn, "SHOW DATABASES")
        grants = " ".join(g for (g,) in rows(conn, "SHOW GRANTS FOR 'bob'@'127.0.0.%'"))
        assert "`extra`" in grants and "`shop`" in grants
    access, root_shown = parallel(
        partial(cli.json, *USER, "show", "access", x, *bob),
        partial(cli.json, *ROOT, "show", x),
    )
    assert {d["Name"] for d in access} == {"shop", "extra"}
    assert root_shown == {"is_root_enabled": True}

    parallel(
        partial(cli.ok, *USER, "revoke", "access", x, *bob, "extra"),
        partial(cli.ok, *ROOT, "disable", x),
    )
    with pytest.raises(pymysql.err.OperationalError):
        mysql(shown, "bob", "bob-pw-1", db="extra")
    with pytest.raises(pymysql.err.OperationalError):
        mysql(shown, "root", enabled["password"], db=None)

    root_shown, *_ = parallel(
        partial(cli.json, *ROOT, "show", x),
        partial(cli.ok, *DB, "delete", x, "extra"),
        partial(cli.ok, *USER, "delete", x, *bob),
    )
    assert root_shown == {"is_root_enabled": False}
    user_rows, dbs, missing = parallel(
        partial(cli.json, *USER, "list", x),
        partial(cli.json, *DB, "list", x),
        partial(cli.fails, *USER, "show", x, *bob),
    )
    assert [(u["Name"], u["Host"]) for u in user_rows] == [("app", "%")]
    assert [d["Name"] for d in dbs] == ["shop"]
    assert "(HTTP 404)" in missing
    with pytest.raises(pymysql.err.OperationalError):
        mysql(shown, "bob", "bob-pw-1")

    # a configuration group --------------------------------------------------------------------
    default_connections = global_value(shown, "max_connections")
    assert default_connections != 123
    cli.ok(*CONFIG, "attach", x, cfg)
    shown = cli.wait_active(x)
    assert shown["configuration"] == group["id"]
    assert global_value(shown, "max_connections") == 123
    cli.ok(*CONFIG, "detach", x)
    shown = cli.wait_active(x)
    assert "configuration" not in shown
    assert global_value(shown, "max_connections") == default_connections

    # restart, resizes, delete ------------------------------------------------------------------
    up = uptime(shown)
    parallel(partial(cli.ok, *CONFIG, "delete", cfg), partial(cli.ok, *INSTANCE, "restart", x))
    shown = cli.wait_active(x)
    assert uptime(shown) < up
    with mysql(shown) as conn:
        assert rows(conn, "SELECT count(*) FROM items") == ((2,),)

    _, listed = parallel(
        partial(cli.ok, *INSTANCE, "resize", "flavor", x, "medium"),
        partial(cli.json, *CONFIG, "list"),
    )
    assert cfg not in {g["Name"] for g in listed}
    shown = cli.wait_active(x)
    assert shown["flavor"] == medium
    assert global_value(shown, "innodb_buffer_pool_size") > buffer_pool

    cli.ok(*INSTANCE, "resize", "volume", x, "2")
    shown = cli.wait_active(x)
    assert shown["volume"] == 2
    with mysql(shown) as conn:
        assert rows(conn, "SELECT name FROM items WHERE id = 2") == (("two",),)

    assert shown["id"] in cli.ok(*INSTANCE, "delete", x)
    cli.wait_gone(x)


# Redis ---------------------------------------------------------------------------------------


def kv(shown: dict[str, Any], user: str = "app", password: str = APP_PASSWORD) -> redis.Redis:
    host, port = address(shown)
    return redis.Redis(host=host, port=port, username=user, password=password, socket_timeout=5)


def eviction_policy(shown: dict[str, Any]) -> str:
    with kv(shown) as r:
        return str(r.info("memory")["maxmemory_policy"])


def test_redis(cli: Cli, names: set[str], groups: set[str]) -> None:
    x, cfg = "osc-redis", "osc-redis-cfg"
    names.add(x)
    groups.add(cfg)
    _, group = create_with_group(
        cli,
        (x, "--flavor", "tiny", "--size", "1", *REDIS, *USERS),
        (cfg, json.dumps({"maxmemory-policy": "allkeys-lru"}), *REDIS),
    )
    shown = cli.wait_active(x)
    assert (shown["datastore"], shown["datastore_version"]) == ("redis", "7.0")
    with kv(shown) as r:
        assert r.set("greeting", "hello")
        assert r.get("greeting") == b"hello"
    assert eviction_policy(shown) == "noeviction"

    no_list, no_create, _ = parallel(
        partial(cli.fails, *DB, "list", x),
        partial(cli.fails, *DB, "create", x, "shop"),
        partial(cli.ok, *USER, "create", x, "bob", "bob-pw-1"),
    )
    assert "(HTTP 501)" in no_list and "(HTTP 501)" in no_create
    assert {u["Name"] for u in cli.json(*USER, "list", x)} == {"app", "bob"}
    with kv(shown, "bob", "bob-pw-1") as r:
        assert r.get("greeting") == b"hello"
    cli.ok(*USER, "delete", x, "bob")
    with pytest.raises(redis.AuthenticationError), kv(shown, "bob", "bob-pw-1") as r:
        r.ping()

    cli.ok(*CONFIG, "attach", x, cfg)
    wait_for(lambda: eviction_policy(shown) == "allkeys-lru", 30, "the group's policy")
    shown = cli.wait_active(x)
    user_rows, attached = parallel(
        partial(cli.json, *USER, "list", x), partial(cli.json, *CONFIG, "instances", cfg)
    )
    assert shown["configuration"] == group["id"]
    assert [u["Name"] for u in user_rows] == ["app"]
    assert [(i["ID"], i["Name"]) for i in attached] == [(shown["id"], x)]

    cli.ok(*CONFIG, "detach", x)
    wait_for(lambda: eviction_policy(shown) == "noeviction", 30, "the default policy back")
    cli.wait_active(x)

    parallel(partial(cli.ok, *CONFIG, "delete", cfg), partial(cli.ok, *INSTANCE, "restart", x))
    shown = cli.wait_active(x)
    with kv(shown) as r:
        assert r.get("greeting") == b"hello", "data survives a restart"

    assert shown["id"] in cli.ok(*INSTANCE, "delete", x)
    cli.wait_gone(x)


def test_replicas_through_the_cli(cli: Cli, names: set[str]) -> None:
    """``--replica-of``, the Role column, ``promote`` and ``detach`` as troveclient sends them."""
    x, rep = "osc-rp-src", "osc-rp"
    names.update({x, rep})
    cli.ok(*INSTANCE, "create", x, "--flavor", "tiny", "--size", "1", *REDIS, *USERS)
    source = cli.wait_active(x)
    with kv(source) as r:
        assert r.set("greeting", "hello")
    cli.ok(*INSTANCE, "create", rep, "--replica-of", source["id"])
    replica = cli.wait_active(rep)
    assert replica["replica_of"] == source["id"]
    roles = {row["Name"]: row["Role"] for row in cli.json(*INSTANCE, "list")}
    assert (roles[x], roles[rep]) == ("primary", "replica")
    wait_for(lambda: _get(replica, "greeting") == b"hello", 30, "replication")

    cli.ok(*INSTANCE, "promote", rep)
    wait_for(lambda: "replica_of" in cli.show(x), 60, "the switchover")
    cli.wait_active(rep)
    with kv(cli.show(rep)) as r:
        assert r.set("after", "switch")
    wait_for(lambda: _get(source, "after") == b"switch", 30, "the old source following")

    cli.ok(*INSTANCE, "detach", x)
    wait_for(lambda: "replica_of" not in cli.show(x), 60, "the detach")
    cli.wait_active(x)
    with kv(source) as r:
        assert r.set("mine", "again")


def _get(shown: dict[str, Any], key: str) -> bytes | None:
    with kv(shown) as r:
        value = r.get(key)
    return value if isinstance(value, bytes) else None
