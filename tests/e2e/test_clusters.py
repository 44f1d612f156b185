"""Clusters through Trove's cluster API, with real engines: a Galera cluster of MariaDB
members (create, a write on member 1 read on member 3, grow to 4, shrink to 3, delete)
and a Redis Cluster (create, keys spread over every master, grow, shrink, delete).
Members are ordinary instances, hidden from the plain list. Bad requests get clear
errors and change nothing."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from tests.support.api import fault
from tests.support.backups import PASSWORD
from tests.support.processes import CofferServer, Credentials, processes_under

pytestmark = pytest.mark.integration

MEMBER = {"flavorRef": "tiny", "volume": {"size": 1}}
WAIT_S = 300.0


def cluster_body(name: str, datastore: str, version: str, members: list[dict[str, Any]]) -> Any:
    return {
        "cluster": {
            "name": name,
            "datastore": {"type": datastore, "version": version},
            "instances": members,
        }
    }


def show(c: httpx.Client, cid: str) -> dict[str, Any]:
    r = c.get(f"/clusters/{cid}")
    assert r.status_code == 200, r.text
    return dict(r.json()["cluster"])


def wait_cluster(c: httpx.Client, cid: str, members: int) -> dict[str, Any]:
    """Until the task is NONE and ``members`` members are ACTIVE (as Heat waits)."""
    end = time.monotonic() + WAIT_S
    cluster: dict[str, Any] = {}
    while time.monotonic() < end:
        cluster = show(c, cid)
        statuses = [m["status"] for m in cluster["instances"]]
        assert "ERROR" not in statuses, cluster
        assert "fault" not in cluster, cluster
        if cluster["task"]["name"] == "NONE" and statuses == ["ACTIVE"] * members:
            return cluster
        time.sleep(0.5)
    raise AssertionError(f"cluster not {members} ACTIVE members in time: {cluster}")


def act(c: httpx.Client, cid: str, body: dict[str, Any]) -> None:
    r = c.post(f"/clusters/{cid}", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["cluster"]["id"] == cid


def delete_cluster(c: httpx.Client, cid: str, member_ids: list[str]) -> None:
    r = c.delete(f"/clusters/{cid}")
    assert r.status_code in (202, 404), r.text
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end and c.get(f"/clusters/{cid}").status_code != 404:
        time.sleep(0.5)
    assert c.get(f"/clusters/{cid}").status_code == 404
    for iid in member_ids:
        assert c.get(f"/instances/{iid}").status_code == 404


@contextmanager
def cluster_of(c: httpx.Client, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Create the cluster; delete it (and every member) afterwards, whatever happened."""
    r = c.post("/clusters", json=body)
    assert r.status_code == 200, r.text
    created = r.json()["cluster"]
    try:
        yield created
    finally:
        if c.get(f"/clusters/{created['id']}").status_code == 200:
            ids = [m["id"] for m in show(c, created["id"])["instances"]]
            end = time.monotonic() + WAIT_S  # a task may still run: wait for it first
            while time.monotonic() < end and show(c, created["id"])["task"]["name"] != "NONE":
                time.sleep(0.5)
            delete_cluster(c, created["id"], ids)


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def member_view(c: httpx.Client, cid: str, iid: str) -> dict[str, Any]:
    r = c.get(f"/clusters/{cid}/instances/{iid}")
    assert r.status_code == 200, r.text
    return dict(r.json()["instance"])


# -- Galera --------------------------------------------------------------------------------


@contextmanager
def mariadb(member: dict[str, Any]) -> Iterator[Any]:
    conn = pymysql.connect(
        host=member["ip"][0],
        port=member["port"],
        user="app",
        password=PASSWORD,
        database="shop",
        autocommit=True,
        connect_timeout=5,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION wsrep_sync_wait = 1")  # read what the cluster committed
            yield cursor
    finally:
        conn.close()


def galera_rows(member: dict[str, Any]) -> list[tuple[Any, ...]]:
    with mariadb(member) as cursor:
        cursor.execute("SELECT id, v FROM t ORDER BY id")
        return list(cursor.fetchall())


def test_galera_cluster_grow_shrink_delete(server: CofferServer, admin: Credentials) -> None:
    with (
        admin.client() as c,
        cluster_of(c, cluster_body("gal", "mariadb", "10.11", [MEMBER, MEMBER, MEMBER])) as created,
    ):
        cid = created["id"]
        assert created["task"]["name"] == "BUILDING"
        assert len(created["instances"]) == 3
        cluster = wait_cluster(c, cid, 3)
        assert cluster["datastore"] == {
            "type": "mariadb",
            "version": "10.11",
            "version_number": cluster["datastore"]["version_number"],
        }
        first, second, third = cluster["instances"]
        assert {m["type"] for m in cluster["instances"]} == {"member"}

        # members are instances: hidden from the plain list, shown on request and to mgmt
        ids = {m["id"] for m in cluster["instances"]}
        plain = {i["id"] for i in c.get("/instances").json()["instances"]}
        assert not ids & plain
        clustered = c.get("/instances", params={"include_clustered": "true"}).json()
        assert ids <= {i["id"] for i in clustered["instances"]}
        assert ids <= {i["id"] for i in c.get("/mgmt/instances").json()["instances"]}
        assert member_view(c, cid, first["id"])["cluster_id"] == cid
        assert show(c, cid) in [cl for cl in c.get("/clusters").json()["clusters"]]

        # a user and a write on member 1 reach member 3 (Galera replicates the DDL too)
        r = c.post(f"/instances/{first['id']}/databases", json={"databases": [{"name": "shop"}]})
        assert r.status_code == 202, r.text
        user = {"name": "app", "password": PASSWORD, "databases": [{"name": "shop"}]}
        r = c.post(f"/instances/{first['id']}/users", json={"users": [user]})
        assert r.status_code == 202, r.text
        with mariadb(first) as cursor:
            cursor.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
            cursor.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
        assert galera_rows(third) == [(1, "one"), (2, "two")]
        with mariadb(second) as cursor:
            cursor.execute("INSERT INTO t VALUES (3, 'three')")
        assert galera_rows(first) == [(1, "one"), (2, "two"), (3, "three")]

        # shrinking below three members is refused and changes nothing
        r = c.post(f"/clusters/{cid}", json={"shrink": [{"id": first["id"]}]})
        assert r.status_code == 400 and "quorum" in fault(r)[2], r.text
        assert show(c, cid)["task"]["name"] == "NONE"

        act(c, cid, {"grow": [MEMBER]})
        assert show(c, cid)["task"]["name"] == "GROWING_CLUSTER"
        cluster = wait_cluster(c, cid, 4)
        fourth = cluster["instances"][3]
        assert galera_rows(fourth) == [(1, "one"), (2, "two"), (3, "three")]
        with mariadb(fourth) as cursor:
            cursor.execute("INSERT INTO t VALUES (4, 'four')")

        act(c, cid, {"shrink": [{"id": second["id"]}]})
        cluster = wait_cluster(c, cid, 3)
        assert [m["id"] for m in cluster["instances"]] == [first["id"], third["id"], fourth["id"]]
        assert c.get(f"/instances/{second['id']}").status_code == 404
        with mariadb(third) as cursor:
            cursor.execute("INSERT INTO t VALUES (5, 'five')")
        expected = [(1, "one"), (2, "two"), (3, "three"), (4, "four"), (5, "five")]
        assert galera_rows(first) == expected
        assert galera_rows(fourth) == expected

        act(c, cid, {"restart": {}})
        assert show(c, cid)["task"]["name"] == "RESTARTING_CLUSTER"
        wait_cluster(c, cid, 3)
        assert galera_rows(fourth) == expected

        # every member stops (a clean shutdown each, the last one holding the newest
        # state): restarted alone, none can form a cluster; Coffer notices and recovers
        # it from the most advanced member, with nothing committed lost
        for member in cluster["instances"]:
            root = server.data_dir / "agent" / "instances" / member["id"]
            pids = processes_under(root)
            assert pids, "the member's engine runs"
            for pid in pids:
                os.kill(pid, signal.SIGTERM)
            wait_gone(pids)
        eventually(
            lambda: show(c, cid)["task"]["name"] == "RESTARTING_CLUSTER",
            "the recovery to start",
            timeout=WAIT_S,
        )
        wait_cluster(c, cid, 3)
        assert galera_rows(first) == expected
        with mariadb(third) as cursor:
            cursor.execute("INSERT INTO t VALUES (6, 'six')")
        assert galera_rows(fourth) == [*expected, (6, "six")]


def wait_gone(pids: list[int]) -> None:
    end = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < end, f"processes {pids} did not exit"
        time.sleep(0.1)


# -- Redis Cluster -------------------------------------------------------------------------


def redis_cluster(member: dict[str, Any]) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[ClusterNode(member["ip"][0], member["port"])],
        username="app",
        password=PASSWORD,
        socket_timeout=5,
    )


def keys_on(member: dict[str, Any]) -> int:
    with redis.Redis(
        host=member["ip"][0], port=member["port"], username="app", password=PASSWORD
    ) as node:
        return int(node.dbsize())


def _admin_socket(server: CofferServer, instance_id: str) -> redis.Redis:
    """Coffer's own account on a member, through its unix socket (what the agent uses)."""
    root = server.data_dir / "agent" / "instances" / instance_id
    return redis.Redis(
        unix_socket_path=str(root / "run" / "redis.sock"),
        username="coffer-admin",
        password=(root / "coffer-admin.secret").read_text().strip(),
        socket_timeout=5,
    )


def failover(server: CofferServer, replica_id: str) -> None:
    """``CLUSTER FAILOVER`` on a replica: it and its master swap roles, as when Redis
    fails over a master that stopped answering."""
    with _admin_socket(server, replica_id) as node:
        node.execute_command("CLUSTER", "FAILOVER")


def node_role(server: CofferServer, instance_id: str) -> str:
    """``master`` or ``slave`` (Redis's ``ROLE``)."""
    with _admin_socket(server, instance_id) as node:
        role = node.execute_command("ROLE")[0]
    return role.decode() if isinstance(role, bytes) else str(role)


def test_redis_cluster_grow_shrink_delete(server: CofferServer, admin: Credentials) -> None:
    members = [MEMBER, MEMBER, MEMBER, {**MEMBER, "type": "replica"}]
    with admin.client() as c, cluster_of(c, cluster_body("rc", "redis", "7.0", members)) as made:
        cid = made["id"]
        cluster = wait_cluster(c, cid, 4)
        roles = sorted(m["type"] for m in cluster["instances"])
        assert roles == ["master", "master", "master", "replica"]
        masters = [m for m in cluster["instances"] if m["type"] == "master"]
        user = {"name": "app", "password": PASSWORD}
        r = c.post(f"/instances/{masters[0]['id']}/users", json={"users": [user]})
        assert r.status_code == 202, r.text  # made on every member

        refuse_bad_actions(c, server, cid, masters[0])
        client = redis_cluster(masters[0])
        try:
            for i in range(300):
                client.set(f"key:{i}", str(i))
            assert int(client.cluster_info()["cluster_slots_assigned"]) == 16384
            for master in masters:
                assert keys_on(master) > 0, "keys spread over every master"
            assert sum(keys_on(m) for m in masters) == 300

            # Redis fails a master over to its replica by itself; Coffer's next action
            # on the cluster goes by (and shows) the roles as they are now
            (replica,) = [m for m in cluster["instances"] if m["type"] == "replica"]
            failover(server, replica["id"])
            eventually(
                lambda: (
                    (node_role(server, replica["id"]), node_role(server, replica["master"]))
                    == ("master", "slave")
                ),
                "the failover",
            )

            act(c, cid, {"grow": [MEMBER]})
            cluster = wait_cluster(c, cid, 5)
            new = cluster["instances"][-1]
            assert new["type"] == "master"
            after = {m["id"]: m for m in cluster["instances"]}
            assert after[replica["id"]]["type"] == "master"
            assert after[replica["master"]]["type"] == "replica"
            assert after[replica["master"]]["master"] == replica["id"]
            assert keys_on(new) > 0, "the new master took its share of the slots and keys"
            assert all(client.get(f"key:{i}") == str(i).encode() for i in range(300))

            # a master goes only with its replicas
            (replica,) = [m for m in cluster["instances"] if m["type"] == "replica"]
            r = c.post(f"/clusters/{cid}", json={"shrink": [{"id": replica["master"]}]})
            assert r.status_code == 400 and "still has replica" in fault(r)[2], r.text

            act(c, cid, {"shrink": [{"id": new["id"]}]})
            cluster = wait_cluster(c, cid, 4)
            assert new["id"] not in [m["id"] for m in cluster["instances"]]
            eventually(
                lambda: all(client.get(f"key:{i}") == str(i).encode() for i in range(300)),
                "every key readable after the shrink",
            )
            assert sum(keys_on(m) for m in masters) == 300
        finally:
            client.close()

        # an admin may reset the cluster's task (Trove's and mgmt's spelling)
        r = c.post(f"/clusters/{cid}", json={"reset-status": {}})
        assert r.status_code == 202, r.text
        r = c.post(f"/mgmt/clusters/{cid}/action", json={"reset-task": {}})
        assert r.status_code == 202, r.text
        assert show(c, cid)["task"]["name"] == "NONE"
        assert cid in [cl["id"] for cl in c.get("/mgmt/clusters").json()["clusters"]]


# -- bad requests --------------------------------------------------------------------------


def refuse_bad_actions(
    c: httpx.Client, server: CofferServer, cid: str, member: dict[str, Any]
) -> None:
    """Bad actions on a running cluster and its members: clear errors, nothing changed."""
    before = show(c, cid)
    cases = [
        ({"grow": [{**MEMBER, "flavorRef": "nope"}]}, 400, "Flavor nope"),
        ({"grow": [{**MEMBER, "volume": {"size": 2}}]}, 400, "cluster's flavor"),
        ({"grow": [{**MEMBER, "type": "arbiter"}]}, 400, "not valid"),
        ({"shrink": [{"id": "nope"}]}, 400, "not a member"),
        ({"shrink": [{"id": member["id"]}]}, 400, "at least 3 masters"),
        ({"restart": {}, "grow": [MEMBER]}, 400, "exactly one"),
        ({}, 400, "exactly one"),
        ({"upgrade": {"datastore_version": "7.0"}}, 400, "not supported"),
    ]
    for body, code, text in cases:
        r = c.post(f"/clusters/{cid}", json=body)
        assert r.status_code == code, (body, r.text)
        assert text in fault(r)[2], r.text
    # members go through their cluster
    r = c.delete(f"/instances/{member['id']}")
    assert r.status_code == 501 and "member of cluster" in fault(r)[2], r.text
    r = c.post(f"/instances/{member['id']}/action", json={"resize": {"flavorRef": "small"}})
    assert r.status_code == 501 and "through its cluster" in fault(r)[2], r.text
    r = c.post("/instances", json={"instance": {"name": "x", "replica_of": member["id"]}})
    assert r.status_code == 501, r.text
    # another project sees no such cluster; reset-status is for admins
    other = server.new_project(f"cl-other-{cid[:8]}")
    with other.client() as o:
        assert o.get(f"/clusters/{cid}").status_code == 404
        assert o.post(f"/clusters/{cid}", json={"grow": [MEMBER]}).status_code == 404
        assert o.delete(f"/clusters/{cid}").status_code == 404
        assert o.post(f"/clusters/{cid}", json={"reset-status": {}}).status_code == 403
        assert cid not in [cl["id"] for cl in o.get("/clusters").json()["clusters"]]
    after = show(c, cid)
    assert after["task"]["name"] == "NONE"
    assert [m["id"] for m in after["instances"]] == [m["id"] for m in before["instances"]]


def test_bad_cluster_requests_change_nothing(server: CofferServer, admin: Credentials) -> None:
    with admin.client() as c:
        before = (c.get("/clusters").json(), c.get("/mgmt/instances").json())
        three = [MEMBER, MEMBER, MEMBER]
        cases = [
            (cluster_body("b", "postgresql", "15", three), 501, "not supported for postgresql"),
            (cluster_body("b", "mariadb", "10.11", [MEMBER, MEMBER]), 400, "at least 3"),
            (
                cluster_body(
                    "b", "mariadb", "10.11", [MEMBER, MEMBER, {**MEMBER, "volume": {"size": 2}}]
                ),
                400,
                "same flavor",
            ),
            (
                cluster_body("b", "redis", "7.0", [MEMBER, MEMBER, {**MEMBER, "type": "replica"}]),
                400,
                "at least 3 masters",
            ),
            (
                cluster_body("b", "redis", "7.0", [*three, {**MEMBER, "type": "arbiter"}]),
                400,
                "not valid",
            ),
            (
                cluster_body("b", "mariadb", "10.11", [{**MEMBER, "flavorRef": "nope"}] * 3),
                400,
                "Flavor nope",
            ),
            (cluster_body("b", "mariadb", "10.11", [{"flavorRef": "tiny"}] * 3), 400, "volume"),
            (
                {"cluster": {"name": "b", "datastore": {"type": "mariadb"}, "instances": three}},
                400,
                "version",
            ),
        ]
        for body, code, text in cases:
            r = c.post("/clusters", json=body)
            assert r.status_code == code, (body, r.text)
            assert text in fault(r)[2], r.text
        assert c.get("/clusters/nope").status_code == 404
        assert c.post("/clusters/nope", json={"restart": {}}).status_code == 404
        assert c.delete("/clusters/nope").status_code == 404
        assert (c.get("/clusters").json(), c.get("/mgmt/instances").json()) == before


# -- crash safety --------------------------------------------------------------------------


def test_server_killed_while_a_cluster_forms(fresh_server: CofferServer) -> None:
    """The create resumes where it stopped: the cluster forms, nothing is left over."""
    server = fresh_server.start()
    members = [MEMBER, MEMBER, MEMBER, {**MEMBER, "type": "replica"}]
    with server.admin().client() as c:
        r = c.post("/clusters", json=cluster_body("rc-crash", "redis", "7.0", members))
        assert r.status_code == 200, r.text
        cid = r.json()["cluster"]["id"]
        log = server.data_dir / "agent.log"
        eventually(
            lambda: f"cluster-create-{cid}:open-" in log.read_text(),
            "the members to start in cluster mode",
        )
        server.kill9()
    server.restart()
    with server.admin().client() as c:
        cluster = wait_cluster(c, cid, 4)
        user = {"name": "app", "password": PASSWORD}
        master = next(m for m in cluster["instances"] if m["type"] == "master")
        assert c.post(f"/instances/{master['id']}/users", json={"users": [user]}).status_code == 202
        client = redis_cluster(master)
        try:
            for i in range(50):
                client.set(f"k{i}", i)
            assert client.cluster_info()["cluster_state"] == "ok"
        finally:
            client.close()
        ids = [m["id"] for m in cluster["instances"]]
        delete_cluster(c, cid, ids)
        on_disk = server.data_dir / "agent" / "instances"
        left = [p.name for p in on_disk.iterdir()] if on_disk.exists() else []
        assert left == [], "no member's files outlive the cluster"
