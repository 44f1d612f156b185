"""Automatic failover across two real hosts: the source's engine and its agent are killed
(-9); the control plane sees the host silent and the replica cut off, promotes the
replica (writes resume there, nothing committed is lost), and when the dead host's agent
comes back the old source is held back, then made a replica of the new source: it never
takes a write again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.api import delete_instances, wait_instance
from tests.support.backups import ENGINES, Engine, rows
from tests.support.hosts import ExtraHost
from tests.support.processes import CofferServer, processes_under

pytestmark = pytest.mark.integration


@pytest.fixture
def two_hosts() -> Iterator[tuple[CofferServer, ExtraHost]]:
    """A server whose local agent is not restarted when it dies, and a second host."""
    server = CofferServer(env={"COFFER_LOCAL_AGENT_RESTART_S": "0"})
    host = ExtraHost(server)
    try:
        server.start()
        host.start()
        yield server, host
    finally:
        # shown by pytest when the test failed
        print(server.log_tail(80))
        print((host.state / "agent.log").read_text(errors="replace")[-6000:])
        host.stop()
        server.stop()


def eventually(check: Any, what: str, timeout: float = 90) -> Any:
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # not yet
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s (last error: {last})")


def show(c: httpx.Client, iid: str) -> dict[str, Any]:
    return dict(c.get(f"/instances/{iid}").json()["instance"])


def writable(engine: Engine, inst: dict[str, Any], first: int) -> bool:
    engine.write(inst, rows(first, 1))
    return True


def refuses_writes(engine: Engine, inst: dict[str, Any]) -> bool:
    try:
        engine.write(inst, rows(800_000, 1))
    except Exception:
        return True
    return False


@pytest.mark.parametrize("name", ["mariadb", "postgresql"])
def test_lost_source_fails_over_and_is_fenced(
    two_hosts: tuple[CofferServer, ExtraHost], name: str
) -> None:
    server, host = two_hosts
    engine = ENGINES[name]
    made: list[str] = []
    with server.admin().client() as c:
        try:
            src = wait_instance(
                c, c.post("/instances", json=engine.body(f"fo-{name}")).json()["instance"]["id"]
            )
            made.append(src["id"])
            r = c.post(
                "/instances", json={"instance": {"name": f"fo-r-{name}", "replica_of": src["id"]}}
            )
            assert r.status_code == 200, r.text
            replica = wait_instance(c, r.json()["instance"]["id"], timeout=180)
            made.append(replica["id"])
            assert replica["ip"] != src["ip"], "the replica is placed on the other host"
            r = c.put(f"/instances/{src['id']}", json={"instance": {"auto_failover": True}})
            assert r.status_code == 202, r.text
            assert show(c, src["id"])["auto_failover"] is True

            engine.write(src, rows(1, 30))
            committed = engine.contents(src)
            eventually(lambda: engine.contents(replica) == committed, "replication")

            # the source's host dies: its agent and its engine, -9
            on_second = host.instance_dir(src["id"]).exists()
            root = (
                host.instance_dir(src["id"])
                if on_second
                else (server.data_dir / "agent" / "instances" / src["id"])
            )
            if on_second:
                host.kill9()
            else:
                agent = server.agent_pid()
                assert agent is not None
                os.kill(agent, signal.SIGKILL)
            engine_pids = processes_under(root)
            assert engine_pids, "the source's engine runs"
            for pid in engine_pids:
                os.kill(pid, signal.SIGKILL)

            # the replica takes over: writable, with every committed row
            eventually(lambda: "replica_of" not in show(c, replica["id"]), "failover")
            new_source = show(c, replica["id"])
            eventually(lambda: writable(engine, new_source, 100), "writes on the new source")
            assert engine.contents(new_source)[: len(committed)] == committed
            old = eventually(
                lambda: (o := show(c, src["id"])).get("fault") and o, "the failover recorded"
            )
            assert old["replica_of"]["id"] == replica["id"], old
            assert "automatic failover" in old["fault"]["message"]

            # the dead host comes back: the old source follows, read-only
            if on_second:
                host.start()
            else:  # the server starts a new local agent when it starts
                server.kill9()
                server.restart()
            engine.write(new_source, rows(200, 5))
            expected = engine.contents(new_source)
            old = eventually(
                lambda: (o := show(c, src["id"]))["status"] == "ACTIVE" and o, "the old source back"
            )
            eventually(lambda: engine.contents(old) == expected, "the old source follows")
            assert refuses_writes(engine, old)
        finally:
            delete_instances(c, ids=reversed(made))
