"""The audit trail: every state-changing request (accepted or refused) and what the
system did by itself (the end of each task, an engine restarted by its agent, a backup
and its verification), per project, through the API and ``coffer events``."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.api import wait_instance
from tests.support.backups import ENGINES, PASSWORD
from tests.support.processes import CofferServer, Credentials, processes_under

pytestmark = pytest.mark.integration


def events_of(c: httpx.Client, resource_id: str) -> list[dict[str, Any]]:
    r = c.get("/events", params={"resource_id": resource_id, "limit": 1000})
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def wait_event(
    c: httpx.Client, resource_id: str, match: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    end = time.monotonic() + 180
    while time.monotonic() < end:
        found = [e for e in events_of(c, resource_id) if match(e)]
        if found:
            return found[0]
        time.sleep(0.3)
    raise AssertionError(f"no event {what} for {resource_id}: {events_of(c, resource_id)}")


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(actor kind, action, outcome), oldest first."""
    return [
        ("system" if e["actor"] == "system" else "user", e["action"], e["outcome"])
        for e in reversed(events)
    ]


def test_requests_and_system_actions_are_recorded(server: CofferServer, admin: Credentials) -> None:
    engine = ENGINES["redis"]
    with admin.client() as c:
        r = c.post("/instances", json=engine.body("ev-redis"))
        assert r.status_code == 200, r.text
        iid = r.json()["instance"]["id"]
        try:
            wait_instance(c, iid)
            # a refused request is an event too, and a bad one changes nothing else
            bad = engine.body("ev-bad")
            bad["instance"]["flavorRef"] = "no-such-flavor"
            assert c.post("/instances", json=bad).status_code == 400
            r = c.post(
                f"/instances/{iid}/users",
                json={"users": [{"name": "bob", "password": "bob-secret-9"}]},
            )
            assert r.status_code == 202, r.text
            assert c.post(f"/instances/{iid}/action", json={"restart": {}}).status_code == 202
            wait_event(c, iid, lambda e: e["action"] == "instance.restart", "restart done")
            wait_instance(c, iid)

            # the engine dies: its agent restarts it, and says so
            root = server.data_dir / "agent" / "instances" / iid
            for pid in processes_under(root):
                os.kill(pid, signal.SIGKILL)
            wait_event(c, iid, lambda e: e["action"] == "instance.engine.restart", "the restart")
            wait_instance(c, iid)

            r = c.post("/backups", json={"backup": {"name": "ev-bk", "instance": iid}})
            assert r.status_code == 202, r.text
            bid = r.json()["backup"]["id"]
            wait_event(
                c,
                bid,
                lambda e: e["action"] == "backup.create" and e["actor"] == "system",
                "backup",
            )

            seen = kinds(events_of(c, iid))
            assert seen[:2] == [
                ("user", "instance.create", "200"),
                ("system", "instance.build", "done"),
            ]
            for step in [
                ("user", "instance.user.create", "202"),
                ("user", "instance.action", "202"),
                ("system", "instance.restart", "done"),
                ("system", "instance.engine.restart", "done"),
            ]:
                assert step in seen, (step, seen)
            assert seen.index(("user", "instance.action", "202")) < seen.index(
                ("system", "instance.restart", "done")
            )
            created = events_of(c, iid)[-1]
            assert created["actor"].startswith("project ") and created["actor"].endswith("(admin)")
            assert created["detail"] == "POST " + httpx.URL(admin.endpoint).path + "/instances"
            refused = [
                e
                for e in c.get("/events", params={"limit": 50}).json()["events"]
                if e["action"] == "instance.create" and e["outcome"] == "400"
            ]
            assert refused and refused[0]["resource_id"] is None
            backup_events = kinds(events_of(c, bid))
            assert ("user", "backup.create", "202") in backup_events
            assert ("system", "backup.create", "done") in backup_events

            # nothing in the trail holds a password
            everything = json.dumps(c.get("/mgmt/events", params={"limit": 1000}).json())
            assert PASSWORD not in everything and "bob-secret-9" not in everything

            # the CLI shows the same trail
            out = server.cli("events", iid, "--json").stdout
            assert [e["id"] for e in json.loads(out)["events"]] == [
                e["id"] for e in events_of(c, iid)[:50]
            ]
            table = server.cli("events", iid).stdout
            assert "instance.engine.restart" in table
        finally:
            if c.get(f"/instances/{iid}").status_code == 200:
                c.delete(f"/instances/{iid}")
        wait_event(
            c, iid, lambda e: e["action"] == "instance.delete" and e["actor"] == "system", "deleted"
        )


def test_events_are_kept_per_project(server: CofferServer, admin: Credentials) -> None:
    other = server.new_project("ev-other")
    with admin.client() as c, other.client() as o:
        r = o.post("/instances", json={"instance": {"name": "x", "flavorRef": "nope"}})
        assert r.status_code == 400
        theirs = o.get("/events").json()["events"]
        assert [e["action"] for e in theirs] == ["instance.create"]
        assert theirs[0]["actor"] == "project ev-other" and theirs[0]["outcome"] == "400"
        # the admin's project does not list them; mgmt shows every project's
        assert theirs[0]["id"] not in [
            e["id"] for e in c.get("/events", params={"limit": 1000}).json()["events"]
        ]
        every = c.get("/mgmt/events", params={"of_project": other.project_id}).json()["events"]
        assert [e["id"] for e in every] == [theirs[0]["id"]]
        assert o.get("/mgmt/events").status_code == 403
        root = other.endpoint.rsplit("/v1.0/", 1)[0]
        assert o.get(f"{root}/v1.0/{admin.project_id}/events").status_code == 403
        assert o.get("/events", params={"limit": 0}).status_code == 400
