"""The conductor side of the agent protocol, driven as an agent would drive it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.support.api import create_body, fault, wait_gone, wait_instance
from tests.support.hosts import ExtraHost, join_token
from tests.support.processes import CofferServer, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def bare_server() -> Iterator[CofferServer]:
    """A server without its local agent: the test is the only host."""
    srv = CofferServer(env={"COFFER_LOCAL_AGENT": "false", "COFFER_HEARTBEAT_EXPIRY_S": "30"})
    srv.wait_ready = lambda timeout=60.0: None  # type: ignore[method-assign]
    try:
        srv.start()
        wait_for(lambda: (srv.data_dir / "credentials.json").exists(), 30, "credentials")
        wait_for(lambda: _answers(srv), 30, "the API")
        yield srv
    finally:
        srv.stop()


def _answers(srv: CofferServer) -> bool:
    try:
        return httpx.get(srv.url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_registration_heartbeats_and_redelivery(bare_server: CofferServer) -> None:
    agent = httpx.Client(base_url=bare_server.url + "/agent/v1", timeout=30)
    r = agent.post(
        "/register", json={"join_token": "wrong", "host_name": "h", "address": "127.0.0.1"}
    )
    assert r.status_code == 401 and fault(r)[0] == "unauthorized"
    token = join_token(bare_server)
    reg = agent.post(
        "/register",
        json={
            "join_token": token,
            "host_name": "proto",
            "address": "127.0.0.1",
            "engines": {"postgresql": ["15"]},
        },
    ).json()
    cred = {"X-Host-Credential": reg["credential"]}
    assert (
        agent.post("/poll", json={"wait_s": 0}, headers={"X-Host-Credential": "nope"}).status_code
        == 401
    )

    assert agent.post("/heartbeat", json={"seq": 100}, headers=cred).json()["accepted"] is True
    assert agent.post("/heartbeat", json={"seq": 50}, headers=cred).json()["accepted"] is False
    assert agent.post("/heartbeat", json={"seq": 100}, headers=cred).json()["accepted"] is False

    with bare_server.admin().client() as c:
        iid = c.post("/instances", json=create_body("proto")).json()["instance"]["id"]
        first = agent.post("/poll", json={"wait_s": 5}, headers=cred).json()["commands"]
        assert [cmd["kind"] for cmd in first] == ["instance.ensure"]
        cmd = first[0]
        assert (
            cmd["instance_id"] == iid and cmd["payload"]["users"][0]["password"] == "app-secret-1"
        )
        # still running: not sent again; lost (not listed as running): sent again
        again = agent.post(
            "/poll", json={"wait_s": 0.2, "running": [cmd["id"]]}, headers=cred
        ).json()
        assert again["commands"] == []
        lost = agent.post("/poll", json={"wait_s": 0.2, "running": []}, headers=cred).json()
        assert [x["id"] for x in lost["commands"]] == [cmd["id"]]

        observed = {"service_status": "healthy", "seq": time.time_ns()}
        r = agent.post(
            f"/commands/{cmd['id']}/result", json={"ok": True, "result": observed}, headers=cred
        )
        assert r.json() == {"recorded": True}
        r = agent.post(
            f"/commands/{cmd['id']}/result",
            json={"ok": False, "error_code": "EngineError"},
            headers=cred,
        )
        assert r.json() == {"recorded": False}, "the first result wins"
        assert agent.post("/heartbeat", json={"seq": time.time_ns()}, headers=cred).json()[
            "accepted"
        ]
        inst = wait_instance(c, iid, timeout=30)
        assert inst["operating_status"] == "HEALTHY"

        # an observation older than the one the create reported is dropped
        stale = {
            "seq": time.time_ns(),
            "instances": [{"instance_id": iid, "service_status": "shutdown", "seq": 1}],
        }
        agent.post("/heartbeat", json=stale, headers=cred)
        assert c.get(f"/instances/{iid}").json()["instance"]["operating_status"] == "HEALTHY"

        assert c.delete(f"/instances/{iid}").status_code == 202
        (delete,) = agent.post("/poll", json={"wait_s": 5}, headers=cred).json()["commands"]
        assert delete["kind"] == "instance.delete"
        agent.post(f"/commands/{delete['id']}/result", json={"ok": True}, headers=cred)
        wait_gone(c, iid, timeout=30)


@pytest.fixture
def server() -> Iterator[CofferServer]:
    """A server of this test's own: the second host must not linger for other tests."""
    srv = CofferServer()
    try:
        yield srv.start()
    finally:
        srv.stop()


def test_a_second_host_takes_instances(server: CofferServer) -> None:
    """A real `coffer agent` on another (simulated) host registers and gets placements."""
    host = ExtraHost(server)
    try:
        host.start()
        with server.admin().client() as c:
            ids = [
                c.post("/instances", json=create_body(f"spread-{i}")).json()["instance"]["id"]
                for i in range(2)
            ]
            for iid in ids:
                wait_instance(c, iid)
            on_second = [iid for iid in ids if (host.instance_dir(iid) / "data").is_dir()]
            assert on_second, "the emptier host gets a new instance"
            inst = c.get(f"/instances/{on_second[0]}").json()["instance"]
            assert inst["ip"] == ["127.0.0.2"]
            with psycopg.connect(
                host="127.0.0.2",
                port=inst["port"],
                user="app",
                password="app-secret-1",
                dbname="shop",
            ) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            for iid in ids:
                assert c.delete(f"/instances/{iid}").status_code == 202
            for iid in ids:
                wait_gone(c, iid)
            assert not any((host.state / "instances").iterdir())
    finally:
        host.stop()
