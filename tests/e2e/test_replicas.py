"""Replicas through the Trove API, for every engine: a replica is seeded and follows its
source (writes propagate, the replica refuses writes, the views show ``replicas`` /
``replica_of`` and the replication state), a planned switchover loses no committed write
and turns the old source into a replica of the new one, a detached replica is a
standalone writable instance. Bad requests change nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from tests.support.api import delete_instances, fault, wait_instance
from tests.support.backups import ENGINES, Engine, rows
from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except Exception:  # not there yet (e.g. the replica restarting)
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def show(c: httpx.Client, iid: str) -> dict[str, Any]:
    r = c.get(f"/instances/{iid}")
    assert r.status_code == 200, r.text
    return dict(r.json()["instance"])


def refuses_writes(engine: Engine, inst: dict[str, Any]) -> bool:
    try:
        engine.write(inst, rows(900_000, 1))
    except Exception:
        return True
    return False


def wait_idle(c: httpx.Client, *ids: str) -> None:
    for iid in ids:
        wait_instance(c, iid, timeout=180)


@pytest.mark.parametrize("name", ["postgresql", "mariadb", "redis"])
def test_replica_follow_switchover_detach(
    server: CofferServer, admin: Credentials, name: str
) -> None:
    engine = ENGINES[name]
    made: list[str] = []
    with admin.client() as c:
        try:
            src = wait_instance(
                c, c.post("/instances", json=engine.body(f"rp-src-{name}")).json()["instance"]["id"]
            )
            made.append(src["id"])
            engine.write(src, rows(1, 20))

            r = c.post(
                "/instances", json={"instance": {"name": f"rp-{name}", "replica_of": src["id"]}}
            )
            assert r.status_code == 200, r.text
            replica = r.json()["instance"]
            made.append(replica["id"])
            assert replica["replica_of"]["id"] == src["id"]
            replica = wait_instance(c, replica["id"], timeout=180)
            assert [x["id"] for x in show(c, src["id"])["replicas"]] == [replica["id"]]
            listed = {i["id"]: i for i in c.get("/instances").json()["instances"]}
            assert listed[replica["id"]]["replica_of"]["id"] == src["id"]

            engine.write(src, rows(21, 10))
            expected = engine.contents(src)
            eventually(lambda: engine.contents(replica) == expected, "replication")
            assert refuses_writes(engine, replica)
            eventually(
                lambda: show(c, replica["id"]).get("replication", {}).get("role") == "replica",
                "the replica's state in its view",
            )

            # planned switchover: every committed write survives, roles swap
            engine.write(src, rows(31, 5))
            at_switch = engine.contents(src)
            r = c.post(f"/instances/{replica['id']}/action", json={"promote_to_replica_source": {}})
            assert r.status_code == 202, r.text
            wait_idle(c, replica["id"], src["id"])
            new_source, old_source = show(c, replica["id"]), show(c, src["id"])
            assert "replica_of" not in new_source and "fault" not in new_source, new_source
            assert [x["id"] for x in new_source["replicas"]] == [src["id"]]
            assert old_source["replica_of"]["id"] == replica["id"], old_source
            assert engine.contents(new_source) == at_switch
            engine.write(new_source, rows(41, 5))
            expected = engine.contents(new_source)
            eventually(lambda: engine.contents(old_source) == expected, "reverse replication")
            assert refuses_writes(engine, old_source)

            # detach: the old source leaves the set and takes writes again
            r = c.put(f"/instances/{src['id']}", json={"instance": {"replica_of": None}})
            assert r.status_code == 202, r.text
            wait_idle(c, src["id"])
            detached = show(c, src["id"])
            assert "replica_of" not in detached
            assert "replicas" not in show(c, replica["id"])
            engine.write(detached, rows(51, 1))
        finally:
            delete_instances(c, ids=reversed(made))


def test_bad_replica_requests_change_nothing(server: CofferServer, admin: Credentials) -> None:
    engine = ENGINES["mariadb"]
    other = server.new_project("rp-other")
    made: list[str] = []
    with admin.client() as c, other.client() as o:
        try:
            src = wait_instance(
                c, c.post("/instances", json=engine.body("rp-bad-src")).json()["instance"]["id"]
            )
            made.append(src["id"])
            r = c.post("/instances", json={"instance": {"name": "rp-bad", "replica_of": src["id"]}})
            assert r.status_code == 200, r.text
            replica = wait_instance(c, r.json()["instance"]["id"], timeout=180)
            made.append(replica["id"])
            count = len(c.get("/instances").json()["instances"])

            def refused(
                client: httpx.Client, body: dict[str, Any], status: int, words: str
            ) -> None:
                r = client.post("/instances", json={"instance": {"name": "rp-no", **body}})
                assert r.status_code == status, r.text
                assert words in fault(r)[2], fault(r)

            refused(c, {"replica_of": replica["id"]}, 403, "replicas of replicas")
            refused(c, {"replica_of": src["id"], "replica_count": 4}, 400, "replica_count")
            refused(c, {"replica_count": 2, "flavorRef": "tiny"}, 400, "only valid together")
            refused(
                c,
                {"replica_of": src["id"], "datastore": {"type": "postgresql"}},
                400,
                "datastore",
            )
            refused(c, {"replica_of": src["id"], "volume": {"size": 0}}, 400, "")
            refused(o, {"replica_of": src["id"]}, 404, "")
            assert len(c.get("/instances").json()["instances"]) == count

            r = c.delete(f"/instances/{src['id']}")
            assert r.status_code == 403 and "replicas" in fault(r)[2], r.text
            r = c.put(f"/instances/{src['id']}", json={"instance": {"replica_of": None}})
            assert r.status_code == 400 and "not a replica" in fault(r)[2], r.text
            r = c.post(f"/instances/{src['id']}/action", json={"promote_to_replica_source": {}})
            assert r.status_code == 400 and "not a replica" in fault(r)[2], r.text
            r = c.post(f"/instances/{src['id']}/action", json={"eject_replica_source": {}})
            assert r.status_code == 400 and "lost" in fault(r)[2], r.text
            r = c.post(f"/instances/{replica['id']}/action", json={"eject_replica_source": {}})
            assert r.status_code == 400 and "not a replica source" in fault(r)[2], r.text
            assert show(c, src["id"])["status"] == "ACTIVE"
            assert show(c, replica["id"])["replica_of"]["id"] == src["id"]
        finally:
            delete_instances(c, ids=reversed(made))


def test_redis_replicas_share_their_sources_accounts(
    server: CofferServer, admin: Credentials
) -> None:
    """Redis does not replicate its users: Coffer copies every account change of a source
    to its replicas, and refuses one made on a replica."""
    engine = ENGINES["redis"]
    made: list[str] = []
    with admin.client() as c:
        try:
            src = wait_instance(
                c, c.post("/instances", json=engine.body("rp-acl-src")).json()["instance"]["id"]
            )
            made.append(src["id"])
            r = c.post("/instances", json={"instance": {"name": "rp-acl", "replica_of": src["id"]}})
            replica = wait_instance(c, r.json()["instance"]["id"], timeout=180)
            made.append(replica["id"])
            user = {"users": [{"name": "carol", "password": "carol-pw-1"}]}
            assert c.post(f"/instances/{src['id']}/users", json=user).status_code == 202
            names = {u["name"] for u in c.get(f"/instances/{replica['id']}/users").json()["users"]}
            assert {"app", "carol"} <= names
            with redis.Redis(
                host=replica["ip"][0], port=replica["port"], username="carol", password="carol-pw-1"
            ) as r:
                assert r.ping()
            r = c.post(
                f"/instances/{replica['id']}/users",
                json={"users": [{"name": "dave", "password": "x-pw-1"}]},
            )
            assert r.status_code == 400 and "replica" in fault(r)[2], r.text
            assert c.delete(f"/instances/{src['id']}/users/carol").status_code == 202
            names = {u["name"] for u in c.get(f"/instances/{replica['id']}/users").json()["users"]}
            assert "carol" not in names
        finally:
            delete_instances(c, ids=reversed(made))
