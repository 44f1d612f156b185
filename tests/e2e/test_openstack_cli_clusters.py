"""Clusters through the real OpenStack clients: the ``openstack database cluster`` CLI and
python-troveclient used the way Heat's ``OS::Trove::Cluster`` uses it.

The companion of ``test_clusters.py`` (which drives the HTTP API directly): here every
request is what the clients themselves build and every reply must parse in them. Commands
run against the shared ``server`` fixture with the ``admin_token`` auth plugin (the ``Cli``
helper of ``test_openstack_cli.py``); clusters are checked against the engines (redis-py's
cluster client, PyMySQL on Galera members) where the engine can tell. Clusters a test
creates are deleted at teardown, whatever happened.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pymysql
import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster
from troveclient.apiclient import exceptions
from troveclient.v1 import client

from tests.e2e import test_openstack_cli as osc
from tests.e2e.test_openstack_cli import APP_PASSWORD, Cli, parallel
from tests.e2e.test_troveclient import flavor_id, trove_client
from tests.support.processes import Credentials

pytestmark = pytest.mark.integration

cli = osc.cli

CLUSTER = ("database", "cluster")
MEMBER = ("--instance", "flavor=tiny,volume=1")
REPLICA = ("--instance", "flavor=tiny,volume=1,type=replica")
WAIT_S = 180.0
#: Heat's OS::Trove::Cluster: any member in one of these fails the stack
HEAT_BAD_STATUSES = ("ERROR", "FAILED")


@pytest.fixture
def trove(admin: Credentials) -> client.Client:
    return trove_client(admin)


@pytest.fixture
def clusters(admin: Credentials) -> Iterator[set[str]]:
    """Names a test gives its clusters; clusters still carrying one are deleted at teardown
    (once any task still running has ended) and waited for until they are gone."""
    used: set[str] = set()
    try:
        yield used
    finally:
        with admin.client() as c:
            delete_clusters(c, used)


def delete_clusters(c: httpx.Client, names: set[str]) -> None:
    """Teardown safety net: delete this project's clusters with one of these names, retrying
    while a task still runs (the delete is refused then), and wait until they are gone."""
    listed = c.get("/clusters")
    assert listed.status_code == 200, listed.text
    doomed = [cl["id"] for cl in listed.json()["clusters"] if cl["name"] in names]
    end = time.monotonic() + WAIT_S
    for cid in doomed:
        while (code := c.delete(f"/clusters/{cid}").status_code) not in (202, 404):
            assert time.monotonic() < end, f"cluster {cid} could not be deleted ({code})"
            time.sleep(0.5)
    for cid in doomed:
        while c.get(f"/clusters/{cid}").status_code != 404:
            assert time.monotonic() < end, f"cluster {cid} still exists after {WAIT_S} s"
            time.sleep(0.5)


def wait_cluster(trove: client.Client, cid: str, members: int) -> Any:
    """Poll ``clusters.get`` until the task is NONE and ``members`` members are ACTIVE;
    a member in ERROR or FAILED, or a cluster fault, fails at once."""
    end = time.monotonic() + WAIT_S
    cluster = None
    while time.monotonic() < end:
        cluster = trove.clusters.get(cid)
        statuses = [m["status"] for m in cluster.instances]
        assert not set(statuses) & set(HEAT_BAD_STATUSES), cluster._info
        assert not hasattr(cluster, "fault"), cluster._info
        if cluster.task["name"] == "NONE" and statuses == ["ACTIVE"] * members:
            return cluster
        time.sleep(0.5)
    raise AssertionError(f"cluster {cid} not {members} ACTIVE members in time: {cluster!r}")


def wait_not_found(trove: client.Client, cid: str) -> None:
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        try:
            trove.clusters.get(cid)
        except exceptions.NotFound:
            return
        time.sleep(0.5)
    raise AssertionError(f"cluster {cid} still exists after {WAIT_S} s")


def cluster_gone_for_the_cli(cli: Cli, name: str) -> None:
    error = cli.fails(*CLUSTER, "show", name)
    assert f"No cluster with a name or ID of '{name}' exists" in error, error


# -- Redis Cluster through the openstack CLI -------------------------------------------------


def redis_cluster(member: dict[str, Any]) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[ClusterNode(member["ip"][0], member["port"])],
        username="app",
        password=APP_PASSWORD,
        socket_timeout=5,
    )


def keys_on(member: dict[str, Any]) -> int:
    """How many keys this one node holds."""
    host, port = member["ip"][0], member["port"]
    with redis.Redis(host=host, port=port, username="app", password=APP_PASSWORD) as node:
        return int(node.dbsize())


def all_keys_readable(member: dict[str, Any], count: int) -> bool:
    with redis_cluster(member) as rc:
        return all(rc.get(f"k:{i}") == str(i).encode() for i in range(count))


def test_redis_cluster_through_the_cli(cli: Cli, trove: client.Client, clusters: set[str]) -> None:
    """create, show, list, list instances, grow, shrink, delete, as a user types them.

    Members are three masters: troveclient sends ``type=replica`` as a list, which the
    server refuses today (see ``test_replica_type_as_the_cli_sends_it``)."""
    name = "osc-rc"
    clusters.add(name)
    created = cli.json(*CLUSTER, "create", name, "redis", "7.0", *MEMBER, *MEMBER, *MEMBER)
    assert (created["name"], created["datastore"], created["datastore_version"]) == (
        name,
        "redis",
        "7.0",
    )
    assert (created["task_name"], created["instance_count"]) == ("BUILDING", 3)
    cid = created["id"]

    cluster = wait_cluster(trove, cid, 3)
    members = {m["id"]: m for m in cluster.instances}
    assert sorted(m["type"] for m in cluster.instances) == ["master"] * 3
    shown, listed, member_rows, plain, every = parallel(
        partial(cli.json, *CLUSTER, "show", name),
        partial(cli.json, *CLUSTER, "list"),
        partial(cli.json, *CLUSTER, "list", "instances", name),
        partial(cli.json, "database", "instance", "list"),
        partial(trove.instances.list, include_clustered=True),
    )
    assert (shown["id"], shown["datastore"], shown["datastore_version"]) == (cid, "redis", "7.0")
    assert (shown["task_name"], shown["task_description"]) == ("NONE", cluster.task["description"])
    assert shown["instance_count"] == 3
    assert shown["ip"] == ", ".join(cluster.ip)
    (row,) = [r for r in listed if r["ID"] == cid]
    assert row == {
        "ID": cid,
        "Name": name,
        "Datastore": "redis",
        "Datastore Version": "7.0",
        "Task Name": "NONE",
    }
    tiny = str(flavor_id(trove, "tiny"))
    assert sorted((r["ID"], r["Flavor ID"], r["Size"], r["Status"]) for r in member_rows) == (
        sorted((iid, tiny, 1, "ACTIVE") for iid in members)
    )
    assert not {r["ID"] for r in plain} & set(members), "members hidden from the plain list"
    assert set(members) <= {i.id for i in every}, "include_clustered shows them"

    # a real Redis Cluster: a user made on one member exists on all, keys spread over them
    first = next(iter(members.values()))
    cli.ok("database", "user", "create", first["id"], "app", APP_PASSWORD)
    with redis_cluster(first) as rc:
        for i in range(100):
            rc.set(f"k:{i}", str(i))
    assert all(keys_on(m) > 0 for m in members.values()), "keys spread over every master"

    # shrinking below three masters is refused with the server's message; nothing changes
    refused = cli.fails(*CLUSTER, "shrink", name, first["id"])
    assert "(HTTP 400)" in refused and "at least 3 masters" in refused, refused
    assert trove.clusters.get(cid).task["name"] == "NONE"

    cli.ok(*CLUSTER, "grow", *MEMBER, name)
    cluster = wait_cluster(trove, cid, 4)
    (new,) = [m for m in cluster.instances if m["id"] not in members]
    assert new["type"] == "master"
    assert keys_on(new) > 0, "the new master took its share of the slots and keys"
    assert all_keys_readable(first, 100)

    cli.ok(*CLUSTER, "shrink", name, new["id"])
    cluster = wait_cluster(trove, cid, 3)
    assert {m["id"] for m in cluster.instances} == set(members)
    with pytest.raises(exceptions.NotFound):
        trove.instances.get(new["id"])
    assert all_keys_readable(first, 100), "no key lost when the new master left"

    cli.ok(*CLUSTER, "delete", name)
    wait_not_found(trove, cid)
    for iid in members:
        with pytest.raises(exceptions.NotFound):
            trove.instances.get(iid)
    cluster_gone_for_the_cli(cli, name)


def test_replica_type_as_the_cli_sends_it(
    cli: Cli, trove: client.Client, clusters: set[str]
) -> None:
    name = "osc-rc-replica"
    clusters.add(name)
    created = cli.json(
        *CLUSTER, "create", name, "redis", "7.0", *MEMBER, *MEMBER, *MEMBER, *REPLICA
    )
    cluster = wait_cluster(trove, created["id"], 4)
    assert sorted(m["type"] for m in cluster.instances) == ["master"] * 3 + ["replica"]
    cli.ok(*CLUSTER, "delete", name)
    wait_not_found(trove, created["id"])


def test_bad_cluster_requests_show_the_servers_message(
    cli: Cli, trove: client.Client, clusters: set[str]
) -> None:
    clusters.update({"osc-bad-two", "osc-bad-pg"})
    before = sorted(cl.id for cl in trove.clusters.list())
    two, postgresql = parallel(
        partial(cli.fails, *CLUSTER, "create", "osc-bad-two", "mariadb", "10.11", *MEMBER, *MEMBER),
        partial(
            cli.fails,
            *CLUSTER,
            "create",
            "osc-bad-pg",
            "postgresql",
            "15",
            *MEMBER,
            *MEMBER,
            *MEMBER,
        ),
    )
    assert "(HTTP 400)" in two and "at least 3 members" in two, two
    assert "(HTTP 501)" in postgresql and "not supported for postgresql" in postgresql, postgresql
    assert sorted(cl.id for cl in trove.clusters.list()) == before, "nothing was created"


# -- Heat's OS::Trove::Cluster with python-troveclient -----------------------------------------


def heat_create_complete(trove: client.Client, cid: str) -> Any:
    """Heat's ``check_create_complete``: done when every member is ACTIVE; a member in
    ERROR or FAILED fails the stack. (Heat does not look at the task.)"""
    end = time.monotonic() + WAIT_S
    cluster = None
    while time.monotonic() < end:
        cluster = trove.clusters.get(cid)
        statuses = [m["status"] for m in cluster.instances]
        bad = [s for s in statuses if s in HEAT_BAD_STATUSES]
        assert not bad, f"Heat would fail the stack: {cluster._info}"
        if statuses and all(s == "ACTIVE" for s in statuses):
            return cluster
        time.sleep(0.5)
    raise AssertionError(f"Heat would time out on cluster {cid}: {cluster!r}")


def heat_delete(trove: client.Client, cid: str) -> None:
    """Heat's delete: send it only once the task is NONE (or leave a DELETING cluster be),
    then wait for NotFound."""
    end = time.monotonic() + WAIT_S
    while (task := trove.clusters.get(cid).task["name"]) not in ("NONE", "DELETING"):
        assert time.monotonic() < end, f"cluster {cid} stuck in {task}"
        time.sleep(0.5)
    if task == "NONE":
        trove.clusters.delete(cid)
    wait_not_found(trove, cid)


def galera(member: dict[str, Any]) -> pymysql.Connection:
    return pymysql.connect(
        host=member["ip"][0],
        port=member["port"],
        user="app",
        password=APP_PASSWORD,
        database="shop",
        autocommit=True,
        connect_timeout=5,
    )


def test_heat_style_galera_cluster(trove: client.Client, clusters: set[str]) -> None:
    name = "heat-gal"
    clusters.add(name)
    flavor = str(flavor_id(trove, "tiny"))  # Heat resolves the flavor to its id first
    made = trove.clusters.create(
        name,
        "mariadb",
        "10.11",
        instances=[{"flavorRef": flavor, "volume": {"size": 1}} for _ in range(3)],
    )
    assert made.name == name and made.task["name"] == "BUILDING"
    assert made.datastore["type"] == "mariadb"

    cluster = heat_create_complete(trove, made.id)
    # Heat's attributes: instances (member ids) and ip
    member_ids = [m["id"] for m in cluster.instances]
    assert len(member_ids) == 3 and cluster.ip
    assert {m["ip"][0] for m in cluster.instances} <= set(cluster.ip)

    # the members are one Galera cluster: an account and a row made on the first reach the third
    first, _, third = cluster.instances
    trove.databases.create(first["id"], [{"name": "shop"}])
    trove.users.create(
        first["id"],
        [{"name": "app", "password": APP_PASSWORD, "databases": [{"name": "shop"}]}],
    )
    with galera(first) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (1), (2)")
    with galera(third) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION wsrep_sync_wait = 1")
        cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep_cluster_size'")
        assert cur.fetchone() == ("wsrep_cluster_size", "3")
        cur.execute("SELECT id FROM t ORDER BY id")
        assert cur.fetchall() == ((1,), (2,))

    heat_delete(trove, made.id)
    for iid in member_ids:
        with pytest.raises(exceptions.NotFound):
            trove.instances.get(iid)
