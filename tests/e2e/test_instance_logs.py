"""Instance logs (Trove's ``instances/{id}/log``) through the REST API, the ``openstack
database log`` CLI and ``coffer log``, against real engines: switch the slow query log,
run slow statements, publish them to the backup store and read them back from the
store's directory; refused requests change nothing."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import psycopg
import pymysql
import pytest
import redis

from tests.e2e.test_openstack_cli import Cli
from tests.support.api import (
    create_body,
    delete_configurations,
    delete_instances,
    fault,
    wait_instance,
)
from tests.support.processes import CofferServer, Credentials, wait_for

pytestmark = pytest.mark.integration

PASSWORD = "app-secret-1"
MARIADB = {"type": "mariadb", "version": "10.11"}


def logs(c: httpx.Client, iid: str) -> dict[str, dict[str, Any]]:
    r = c.get(f"/instances/{iid}/log")
    assert r.status_code == 200, r.text
    return {log["name"]: log for log in r.json()["logs"]}


def act(c: httpx.Client, iid: str, name: str, **flags: int) -> dict[str, Any]:
    r = c.post(f"/instances/{iid}/log", json={"name": name, **flags})
    assert r.status_code == 200, r.text
    shown: dict[str, Any] = r.json()["log"]
    assert shown["name"] == name
    return shown


def published_text(server: CofferServer, shown: dict[str, Any]) -> str:
    """Every published part of a log, in order, read from the directory store."""
    directory = server.data_dir / "backups" / shown["prefix"]
    parts = sorted(directory.iterdir())
    assert parts and all(p.name.startswith("log-") for p in parts), parts
    return "".join(p.read_text(errors="replace") for p in parts)


def metafile(server: CofferServer, shown: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((server.data_dir / "backups" / shown["metafile"]).read_text())
    return data


def pg(inst: dict[str, Any]) -> psycopg.Connection:
    return psycopg.connect(
        host=inst["ip"][0],
        port=inst["port"],
        user="app",
        password=PASSWORD,
        dbname="shop",
        autocommit=True,
        connect_timeout=5,
    )


def maria(inst: dict[str, Any]) -> pymysql.Connection:
    return pymysql.connect(
        host=inst["ip"][0],
        port=inst["port"],
        user="app",
        password=PASSWORD,
        database="shop",
        autocommit=True,
        connect_timeout=5,
    )


def wait_published(
    c: httpx.Client, iid: str, name: str, needle: str, server: CofferServer
) -> dict[str, Any]:
    """Publish until ``needle`` is in the published text (the engine writes a slow
    statement's line once it ends, the agent publishes complete lines only)."""
    end = time.monotonic() + 30
    while True:
        shown = act(c, iid, name, publish=1)
        if shown["published"] and needle in published_text(server, shown):
            return shown
        assert time.monotonic() < end, f"{needle!r} never published: {shown}"
        time.sleep(0.3)


def refused(c: httpx.Client, iid: str, body: Any, status: int) -> str:
    r = c.post(f"/instances/{iid}/log", json=body)
    assert r.status_code == status, (body, r.status_code, r.text)
    return fault(r)[2]


def check_refusals(c: httpx.Client, other: Credentials, iid: str) -> None:
    """Bad bodies and another project's token are refused, and nothing changes."""
    before = logs(c, iid)
    refused(c, iid, {"name": "slow_query", "enable": 1, "disable": 1}, 400)
    refused(c, iid, {"name": "slow_query", "enable": 1, "publish": 1}, 400)
    refused(c, iid, {"name": "slow_query", "enable": 2}, 400)
    refused(c, iid, {"name": "slow_query", "enable": "x"}, 400)
    refused(c, iid, {"name": "slow_query", "enable": True}, 400)
    refused(c, iid, {"name": 5, "publish": 1}, 400)
    refused(c, iid, {"enable": 1}, 400)
    refused(c, iid, {"name": "slow_query", "rotate": 1}, 400)
    message = refused(c, iid, {"name": "audit", "enable": 1}, 404)
    assert "error" in message and "slow_query" in message, message
    message = refused(c, iid, {"name": "error", "disable": 1}, 400)
    assert "SYS" in message
    with other.client() as o:
        assert o.get(f"/instances/{iid}/log").status_code == 404
        for flag in ("enable", "disable", "publish", "discard"):
            r = o.post(f"/instances/{iid}/log", json={"name": "slow_query", flag: 1})
            assert r.status_code == 404, (flag, r.text)
    assert refused(c, "no-such-instance", {"name": "error"}, 404)
    after = logs(c, iid)
    assert {n: (v["status"], v["published"]) for n, v in after.items()} == {
        n: (v["status"], v["published"]) for n, v in before.items()
    }


def restart(c: httpx.Client, iid: str) -> dict[str, Any]:
    r = c.post(f"/instances/{iid}/action", json={"restart": {}})
    assert r.status_code == 202, r.text
    return wait_instance(c, iid)


@pytest.fixture
def other(server: CofferServer) -> Credentials:
    return server.new_project(f"logs-intruder-{uuid.uuid4().hex[:8]}")


def test_postgresql_slow_query_log(
    server: CofferServer, admin: Credentials, other: Credentials
) -> None:
    group_name = f"logs-pg-{uuid.uuid4().hex[:8]}"
    with admin.client() as c:
        iid = c.post("/instances", json=create_body("logs-pg")).json()["instance"]["id"]
        try:
            building = c.post(f"/instances/{iid}/log", json={"name": "error", "publish": 1})
            assert building.status_code == 422, "an instance being built is busy"
            assert "not currently available" in fault(building)[2]
            inst = wait_instance(c, iid)
            listed = logs(c, iid)
            assert set(listed) == {"error", "slow_query"}
            assert listed["error"]["type"] == "SYS"
            assert listed["slow_query"] | {"metafile": ""} == {
                "name": "slow_query",
                "type": "USER",
                "status": "Disabled",
                "published": 0,
                "pending": listed["slow_query"]["pending"],
                "container": "None",
                "prefix": "None",
                "metafile": "",
            }
            assert listed["error"]["status"] in ("Ready", "Enabled")
            assert listed["error"]["pending"] > 0, "the server logged its start"
            check_refusals(c, other, iid)

            shown = act(c, iid, "slow_query", enable=1)
            assert shown["status"] != "Disabled"
            with pg(inst) as conn:
                assert conn.execute("SHOW log_min_duration_statement").fetchone() == ("1s",)
                conn.execute("SELECT pg_sleep(1.2), 'slow-marker-1'")
            shown = wait_published(c, iid, "slow_query", "slow-marker-1", server)
            # PostgreSQL's one server log may have gained a line (a checkpoint) meanwhile
            assert shown["status"] in ("Published", "Partial"), shown
            assert shown["prefix"].endswith(f"/{iid}/guest-logs/slow_query/")
            assert metafile(server, shown)["log_size"] == shown["published"]
            assert "duration:" in published_text(server, shown)
            assert PASSWORD not in published_text(server, shown)

            # the switch survives a restart, and the log goes on from where it was
            inst = restart(c, iid)
            assert logs(c, iid)["slow_query"]["status"] in ("Partial", "Published")
            with pg(inst) as conn:
                assert conn.execute("SHOW log_min_duration_statement").fetchone() == ("1s",)
                conn.execute("SELECT pg_sleep(1.2), 'slow-marker-2'")
            again = wait_published(c, iid, "slow_query", "slow-marker-2", server)
            assert again["published"] > shown["published"]
            assert "slow-marker-1" in published_text(server, again), "earlier parts are kept"

            # a configuration group sets the threshold; attaching it keeps the log on
            group = {
                "name": group_name,
                "values": {"log_min_duration_statement": 250},
                "datastore": {"type": "postgresql", "version": "15"},
            }
            cid = c.post("/configurations", json={"configuration": group}).json()["configuration"][
                "id"
            ]
            r = c.put(f"/instances/{iid}", json={"instance": {"configuration": cid}})
            assert r.status_code == 202, r.text
            wait_for(lambda: threshold(inst) == "250ms", 30, "the group's threshold")
            wait_instance(c, iid)
            assert logs(c, iid)["slow_query"]["status"] in ("Partial", "Published")
            r = c.put(f"/instances/{iid}", json={"instance": {"configuration": None}})
            assert r.status_code == 202, r.text
            wait_for(lambda: threshold(inst) == "1s", 30, "the log's own threshold back")
            wait_instance(c, iid)

            shown = act(c, iid, "slow_query", disable=1)
            assert shown["status"] == "Disabled" and shown["published"] == again["published"]
            with pg(inst) as conn:
                assert conn.execute("SHOW log_min_duration_statement").fetchone() == ("-1",)
            assert act(c, iid, "slow_query")["status"] == "Disabled", "show only shows"

            error = act(c, iid, "error", publish=1)
            assert error["published"] > 0
            assert "database system is ready to accept connections" in published_text(server, error)
            shown = act(c, iid, "slow_query", discard=1)
            assert shown["published"] == 0 and shown["prefix"] == "None"
            assert not (server.data_dir / "backups" / again["prefix"]).exists()
            assert not (server.data_dir / "backups" / again["metafile"]).exists()
            assert logs(c, iid)["error"]["published"] == error["published"], "others stay"

            published = server.data_dir / "backups" / admin.project_id / iid / "guest-logs"
            assert published.is_dir()
            delete_instances(c, ids=[iid])
            assert not published.exists(), "deleting the instance removes its published logs"
        finally:
            delete_instances(c, ids=[iid])
            delete_configurations(c, names=[group_name])


def threshold(inst: dict[str, Any]) -> str:
    with pg(inst) as conn:
        row = conn.execute("SHOW log_min_duration_statement").fetchone()
        assert row is not None
        return str(row[0])


def test_mariadb_slow_query_and_general_logs(
    server: CofferServer, admin: Credentials, other: Credentials
) -> None:
    with admin.client() as c:
        body = create_body("logs-maria", datastore=MARIADB)
        iid = c.post("/instances", json=body).json()["instance"]["id"]
        try:
            inst = wait_instance(c, iid)
            listed = logs(c, iid)
            assert {n: v["type"] for n, v in listed.items()} == {
                "error": "SYS",
                "slow_query": "USER",
                "general": "USER",
            }
            assert listed["general"]["status"] == "Disabled"
            check_refusals(c, other, iid)

            act(c, iid, "slow_query", enable=1)
            act(c, iid, "general", enable=1)
            with maria(inst) as conn, conn.cursor() as cur:
                cur.execute("SELECT @@GLOBAL.slow_query_log, @@GLOBAL.general_log")
                assert cur.fetchone() == (1, 1)
                cur.execute("SELECT SLEEP(1.2), 'slow-marker-m'")
                cur.execute("SELECT 'general-marker-m'")
            slow = wait_published(c, iid, "slow_query", "slow-marker-m", server)
            assert "Query_time" in published_text(server, slow)
            user = {"name": "bob", "password": "bob-secret-7", "databases": [{"name": "shop"}]}
            r = c.post(f"/instances/{iid}/users", json={"users": [user]})
            assert r.status_code == 202, r.text
            general = wait_published(c, iid, "general", "general-marker-m", server)
            text = published_text(server, general)
            assert PASSWORD not in text and "bob-secret-7" not in text, "no password is logged"

            inst = restart(c, iid)
            with maria(inst) as conn, conn.cursor() as cur:
                cur.execute("SELECT @@GLOBAL.slow_query_log, @@GLOBAL.general_log")
                assert cur.fetchone() == (1, 1), "the switches survive a restart"
            act(c, iid, "general", disable=1)
            with maria(inst) as conn, conn.cursor() as cur:
                cur.execute("SELECT @@GLOBAL.slow_query_log, @@GLOBAL.general_log")
                assert cur.fetchone() == (1, 0)
            shown = act(c, iid, "general", discard=1)
            assert shown == shown | {"published": 0, "status": "Disabled", "prefix": "None"}
            assert not (server.data_dir / "backups" / general["prefix"]).exists()
            assert logs(c, iid)["slow_query"]["published"] == slow["published"]
        finally:
            delete_instances(c, ids=[iid])


def test_openstack_and_coffer_clients(server: CofferServer, admin: Credentials) -> None:
    """``openstack database log list/set/show`` (python-troveclient) and ``coffer log``."""
    osc = Cli(admin)
    with admin.client() as c:
        iid = c.post("/instances", json=create_body("logs-cli")).json()["instance"]["id"]
        try:
            inst = wait_instance(c, iid)
            listed = osc.json("database", "log", "list", "logs-cli")
            assert {row["Name"]: row["Type"] for row in listed} == {
                "error": "SYS",
                "slow_query": "USER",
            }
            shown = dict(osc.json("database", "log", "set", "logs-cli", "slow_query", "--enable"))
            assert shown["type"] == "USER" and shown["status"] != "Disabled"
            with pg(inst) as conn:
                conn.execute("SELECT pg_sleep(1.2), 'slow-marker-osc'")
            end = time.monotonic() + 30
            while "slow-marker-osc" not in (
                published_text(server, shown) if shown["published"] else ""
            ):
                assert time.monotonic() < end, shown
                time.sleep(0.3)
                shown = dict(
                    osc.json("database", "log", "set", "logs-cli", "slow_query", "--publish")
                )
            shown = dict(osc.json("database", "log", "show", "logs-cli", "slow_query"))
            assert shown["status"] in ("Published", "Partial") and shown["published"] > 0
            again = dict(
                osc.json(
                    "database", "log", "set", "logs-cli", "slow_query", "--discard", "--publish"
                )
            )
            assert 0 < again["published"] <= shown["published"] + 4096
            error = osc.fails(
                "database", "log", "set", "logs-cli", "slow_query", "--enable", "--disable"
            )
            assert "enable and disable" in error

            out = json.loads(server.cli("log", "list", "logs-cli", "--json", creds=admin).stdout)
            assert {log["name"] for log in out["logs"]} == {"error", "slow_query"}
            table = server.cli("log", "list", "logs-cli", creds=admin).stdout
            assert "slow_query" in table and "USER" in table
            off = json.loads(
                server.cli("log", "disable", "logs-cli", "slow_query", "--json", creds=admin).stdout
            )
            assert off["log"]["status"] == "Disabled"
            published = json.loads(
                server.cli("log", "publish", "logs-cli", "error", "--json", creds=admin).stdout
            )["log"]
            assert published["published"] > 0
            shown_text = server.cli("log", "show", "logs-cli", "error", creds=admin).stdout
            assert "Published" in shown_text or "Partial" in shown_text
            gone = json.loads(
                server.cli("log", "discard", "logs-cli", "error", "--json", creds=admin).stdout
            )["log"]
            assert gone["published"] == 0
            bad = server.cli("log", "show", "logs-cli", "audit", check=False, creds=admin)
            assert bad.returncode != 0 and "slow_query" in bad.stderr
        finally:
            delete_instances(c, ids=[iid])


#: a script that runs well past Redis's 10 ms slow log threshold (the marker is in it)
BUSY_SCRIPT = "local i = 0 while i < 3000000 do i = i + 1 end return '{marker}'"


def test_redis_slow_log(server: CofferServer, admin: Credentials, other: Credentials) -> None:
    with admin.client() as c:
        body = create_body("logs-redis", datastore={"type": "redis", "version": "7.0"})
        body["instance"].pop("databases")
        body["instance"]["users"] = [{"name": "app", "password": PASSWORD}]
        iid = c.post("/instances", json=body).json()["instance"]["id"]
        try:
            inst = wait_instance(c, iid)
            listed = logs(c, iid)
            assert {n: v["type"] for n, v in listed.items()} == {
                "error": "SYS",
                "slow_query": "USER",
            }
            assert listed["slow_query"]["status"] == "Disabled"
            check_refusals(c, other, iid)

            act(c, iid, "slow_query", enable=1)
            kv = redis.Redis(
                host=inst["ip"][0], port=inst["port"], username="app", password=PASSWORD
            )
            with kv:
                assert kv.eval(BUSY_SCRIPT.format(marker="slow-marker-r1"), 0) == b"slow-marker-r1"
            first = wait_published(c, iid, "slow_query", "slow-marker-r1", server)
            assert "duration_us=" in published_text(server, first)
            assert PASSWORD not in published_text(server, first)

            inst = restart(c, iid)
            with redis.Redis(
                host=inst["ip"][0], port=inst["port"], username="app", password=PASSWORD
            ) as kv:
                kv.eval(BUSY_SCRIPT.format(marker="slow-marker-r2"), 0)
            second = wait_published(c, iid, "slow_query", "slow-marker-r2", server)
            assert second["published"] > first["published"]
            assert published_text(server, second).count("slow-marker-r1") == 1, "no repeats"

            assert act(c, iid, "slow_query", disable=1)["status"] == "Disabled"
            assert act(c, iid, "slow_query", discard=1)["published"] == 0
            assert not (server.data_dir / "backups" / second["prefix"]).exists()
        finally:
            delete_instances(c, ids=[iid])


def test_openapi_describes_the_log_routes(server: CofferServer) -> None:
    schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    route = schema["paths"]["/v1.0/{project_id}/instances/{instance_id}/log"]
    listed = route["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["$ref"].endswith("/GuestLogList")
    posted = route["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert posted["$ref"].endswith("/GuestLogAction")
    reply = route["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert reply["$ref"].endswith("/GuestLogReply")
    view = schema["components"]["schemas"]["GuestLogView"]
    assert set(view["required"]) == {
        "name",
        "type",
        "status",
        "published",
        "pending",
        "container",
        "prefix",
        "metafile",
    }
    action = schema["components"]["schemas"]["GuestLogAction"]
    assert action["additionalProperties"] is False and action["required"] == ["name"]
