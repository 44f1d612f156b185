"""A Redis instance's life through the REST API, checked against the engine."""

from __future__ import annotations

import pytest
import redis

from tests.support.api import fault, wait_gone, wait_instance
from tests.support.processes import CofferServer, Credentials, wait_for

pytestmark = pytest.mark.integration


def body(name: str, **over: object) -> dict:
    inst = {
        "name": name,
        "flavorRef": "tiny",
        "volume": {"size": 1},
        "datastore": {"type": "redis", "version": "7.0"},
        "users": [{"name": "app", "password": "app-secret-1"}],
    }
    inst.update(over)
    return {"instance": inst}


def client(inst: dict, user: str = "app", password: str = "app-secret-1") -> redis.Redis:
    return redis.Redis(
        host=inst["ip"][0], port=inst["port"], username=user, password=password, socket_timeout=5
    )


def info(inst: dict, key: str) -> str:
    with client(inst) as r:
        return str(r.info("memory")[key])


def test_redis_lifecycle(server: CofferServer, admin: Credentials) -> None:
    with admin.client() as c:
        r = c.post("/instances", json=body("cache", databases=[{"name": "x"}]))
        assert r.status_code == 501 and fault(r)[0] == "notImplemented"
        iid = c.post("/instances", json=body("cache")).json()["instance"]["id"]
        inst = wait_instance(c, iid)
        with client(inst) as r:
            r.set("greeting", "hello")
            assert r.get("greeting") == b"hello"
            with pytest.raises(redis.ResponseError):
                r.config_get("maxmemory")
        with pytest.raises(redis.AuthenticationError):
            client(inst, password="wrong").ping()
        with (
            pytest.raises((redis.ResponseError, redis.AuthenticationError)),
            redis.Redis(port=inst["port"], socket_timeout=5) as anon,
        ):
            anon.set("x", "1")
        assert info(inst, "maxmemory_policy") == "noeviction"
        small = int(info(inst, "maxmemory"))

        assert c.get(f"/instances/{iid}/databases").status_code == 501
        assert (
            c.post(
                f"/instances/{iid}/users", json={"users": [{"name": "bob", "password": "bob-pw"}]}
            ).status_code
            == 202
        )
        assert {u["name"] for u in c.get(f"/instances/{iid}/users").json()["users"]} == {
            "app",
            "bob",
        }
        with client(inst, "bob", "bob-pw") as r:
            assert r.get("greeting") == b"hello"
        assert c.delete(f"/instances/{iid}/users/bob").status_code == 202
        with pytest.raises(redis.AuthenticationError):
            client(inst, "bob", "bob-pw").ping()

        cfg = {
            "configuration": {
                "name": "lru",
                "values": {"maxmemory-policy": "allkeys-lru", "timeout": 300},
                "datastore": {"type": "redis"},
            }
        }
        cid = c.post("/configurations", json=cfg).json()["configuration"]["id"]
        bad = {
            "configuration": {
                "name": "bad",
                "values": {"maxmemory-policy": "sometimes"},
                "datastore": {"type": "redis"},
            }
        }
        r = c.post("/configurations", json=bad)
        assert r.status_code == 422 and "maxmemory-policy" in fault(r)[2]
        assert (
            c.put(f"/instances/{iid}", json={"instance": {"configuration": cid}}).status_code == 202
        )
        wait_for(lambda: info(inst, "maxmemory_policy") == "allkeys-lru", 30, "the live policy")
        inst = wait_instance(c, iid)

        assert c.post(f"/instances/{iid}/action", json={"restart": {}}).status_code == 202
        inst = wait_instance(c, iid)
        with client(inst) as r:
            assert r.get("greeting") == b"hello", "data survives a restart"
        assert info(inst, "maxmemory_policy") == "allkeys-lru"

        assert (
            c.post(f"/instances/{iid}/action", json={"resize": {"flavorRef": "small"}}).status_code
            == 202
        )
        inst = wait_instance(c, iid)
        assert int(info(inst, "maxmemory")) > small

        root = c.post(f"/instances/{iid}/root").json()["user"]
        with client(inst, root["name"], root["password"]) as r:
            assert r.get("greeting") == b"hello"
        assert c.delete(f"/instances/{iid}/root").status_code == 204

        assert (
            c.put(f"/instances/{iid}", json={"instance": {"configuration": None}}).status_code
            == 202
        )
        wait_for(
            lambda: info(inst, "maxmemory_policy") == "noeviction", 30, "the default policy back"
        )
        wait_instance(c, iid)
        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)
        assert c.delete(f"/configurations/{cid}").status_code == 202
