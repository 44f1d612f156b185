"""Crashes of the server, the engine and the agent end in completion or a visible fault."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psycopg
import pytest

from tests.support.api import create_body, wait_gone, wait_instance
from tests.support.processes import (
    CofferServer,
    port_is_listening,
    processes_under,
    wait_for,
)

pytestmark = pytest.mark.integration


def instances_dir(server: CofferServer) -> Path:
    return server.data_dir / "agent" / "instances"


def postmaster_pid(server: CofferServer, iid: str) -> int:
    text = (instances_dir(server) / iid / "data" / "postmaster.pid").read_text()
    return int(text.splitlines()[0])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def agent_log_has(server: CofferServer, text: str) -> bool:
    try:
        return text in (server.data_dir / "agent.log").read_text()
    except OSError:
        return False


def assert_no_orphans(server: CofferServer, live: set[str]) -> None:
    on_disk = (
        {p.name for p in instances_dir(server).iterdir()}
        if instances_dir(server).exists()
        else set()
    )
    assert on_disk == live
    for entry in on_disk:
        postmasters = [
            p for p in processes_under(instances_dir(server) / entry) if " -D " in cmdline(p)
        ]
        assert len(postmasters) == 1, f"one engine per instance, found {postmasters}"


def test_server_killed_during_create_and_delete(fresh_server: CofferServer) -> None:
    server = fresh_server.start()
    with server.admin().client() as c:
        iid = c.post("/instances", json=create_body("crash-create")).json()["instance"]["id"]
        wait_for(
            lambda: agent_log_has(server, f"create-{iid}:ensure (instance.ensure) started"),
            30,
            "the agent to start the create",
        )
        server.kill9()
    server.restart()
    with server.admin().client() as c:
        inst = wait_instance(c, iid)
        with psycopg.connect(
            host="127.0.0.1", port=inst["port"], user="app", password="app-secret-1", dbname="shop"
        ) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert_no_orphans(server, {iid})

        assert c.delete(f"/instances/{iid}").status_code == 202
        server.kill9()
    server.restart()
    with server.admin().client() as c:
        wait_gone(c, iid)
    assert not port_is_listening(inst["port"])
    assert_no_orphans(server, set())


def test_server_killed_right_after_accepting_create(fresh_server: CofferServer) -> None:
    server = fresh_server.start()
    with server.admin().client() as c:
        iid = c.post("/instances", json=create_body("crash-early")).json()["instance"]["id"]
        server.kill9()
    server.restart()
    with server.admin().client() as c:
        inst = wait_instance(c, iid)
        assert inst["operating_status"] == "HEALTHY"
        assert_no_orphans(server, {iid})
        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)
    assert_no_orphans(server, set())


def test_engine_killed_is_restarted(fresh_server: CofferServer) -> None:
    server = fresh_server.start()
    with server.admin().client() as c:
        inst = c.post("/instances", json=create_body("crash-engine")).json()["instance"]
        iid = inst["id"]
        inst = wait_instance(c, iid)
        dsn = dict(
            host="127.0.0.1", port=inst["port"], user="app", password="app-secret-1", dbname="shop"
        )
        with psycopg.connect(**dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        old = postmaster_pid(server, iid)
        os.kill(old, signal.SIGKILL)
        wait_for(
            lambda: c.get(f"/instances/{iid}").json()["instance"]["operating_status"] != "HEALTHY",
            10,
            "the crash to be seen",
            0.05,
        )
        inst = wait_instance(c, iid, timeout=60)
        assert postmaster_pid(server, iid) != old
        with psycopg.connect(**dsn) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (42,)
        assert_no_orphans(server, {iid})
        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)


def test_agent_killed_turns_error_then_recovers(fresh_server: CofferServer) -> None:
    fresh_server.env.update(COFFER_HEARTBEAT_EXPIRY_S="2", COFFER_LOCAL_AGENT_RESTART_S="6")
    server = fresh_server.start()
    with server.admin().client() as c:
        iid = c.post("/instances", json=create_body("crash-agent")).json()["instance"]["id"]
        inst = wait_instance(c, iid)
        engine = postmaster_pid(server, iid)
        agent = server.agent_pid()
        assert agent is not None
        os.kill(agent, signal.SIGKILL)
        killed_at = time.monotonic()
        inst = wait_instance(c, iid, operating="ERROR", timeout=30)
        assert inst["status"] == "ACTIVE"
        # The data path does not depend on the agent: the engine still serves.
        dsn = dict(
            host="127.0.0.1", port=inst["port"], user="app", password="app-secret-1", dbname="shop"
        )
        with psycopg.connect(**dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert time.monotonic() - killed_at < 6, "the agent came back before the check ran"
        wait_instance(c, iid, timeout=60)
        new_agent = server.agent_pid()
        assert new_agent is not None and new_agent != agent
        assert postmaster_pid(server, iid) == engine, "the new agent adopts the running engine"
        assert_no_orphans(server, {iid})
        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)
