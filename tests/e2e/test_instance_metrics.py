"""An instance's metrics history on a real server with its agent and a real PostgreSQL:
real sessions and transactions show up as samples with connections, a rate, CPU and
memory (from the instance's cgroup); bad query values are refused in Trove's envelope;
another project's token gets 404; the CLI shows the same series; deleting the instance
removes its samples from the metadata database."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from coffer.db.session import make_engine
from tests.support.api import create_body, delete_instances, fault, wait_gone, wait_instance
from tests.support.processes import CofferServer, Credentials, wait_for

pytestmark = pytest.mark.integration


def _samples(c: httpx.Client, iid: str, **params: str) -> dict[str, Any]:
    r = c.get(f"/instances/{iid}/metrics", params=params)
    assert r.status_code == 200, r.text
    metrics: dict[str, Any] = r.json()["metrics"]
    return metrics


def _stored_samples(server: CofferServer, iid: str) -> int:
    """Rows of the instance in the server's metadata database (SQLite or PostgreSQL)."""
    url = server.env.get("COFFER_DATABASE_URL") or f"sqlite:///{server.data_dir / 'coffer.db'}"
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM metric_samples WHERE instance_id = :iid")
            return int(conn.execute(query, {"iid": iid}).scalar_one())
    finally:
        engine.dispose()


def _limits_mode(c: httpx.Client) -> str:
    hosts = c.get("/mgmt/hosts").json()["hosts"]
    return str(hosts[0].get("facts", {}).get("limits", ""))


def test_metrics_history_of_a_busy_instance(server: CofferServer, admin: Credentials) -> None:
    stranger = server.new_project("metrics-stranger")
    made: list[str] = []
    with admin.client() as c:
        try:
            r = c.post("/instances", json=create_body("history-pg"))
            assert r.status_code == 200, r.text
            iid = r.json()["instance"]["id"]
            made.append(iid)
            inst = wait_instance(c, iid)
            cgroups = not _limits_mode(c).startswith("none")
            with psycopg.connect(
                host=inst["ip"][0],
                port=inst["port"],
                user="app",
                password="app-secret-1",
                dbname="shop",
                connect_timeout=5,
                autocommit=True,
            ) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS hits (n int, pad text)")

                def busy_then_look() -> dict[str, Any] | None:
                    """Real work (a session held open), then the newest sample if it
                    shows it (or None while the agent has not reported it yet)."""
                    for n in range(200):
                        conn.execute("INSERT INTO hits VALUES (%s, repeat('x', 200))", (n,))
                    latest = _samples(c, iid, minutes="10")["samples"]
                    if not latest:
                        return None
                    p = latest[-1]
                    if not (p["up"] and (p["connections"] or 0) >= 1 and p["rate_per_s"]):
                        return None
                    if cgroups and not (p["cpu_percent"] and p["memory_bytes"]):
                        return None
                    return p

                point = wait_for(busy_then_look, 90, "a sample showing the activity", 0.5)
            assert (point["volume_used_bytes"] or 0) > 0
            assert point["volume_size_bytes"] == 1024**3
            assert point["replication_lag_s"] is None
            if cgroups:
                assert point["cpu_percent"] > 0 and point["memory_bytes"] > 1024 * 1024

            series = _samples(c, iid, minutes="10")
            assert series["rate_kind"] == "transactions"
            assert series["instance_id"] == iid and series["sample_interval_s"] == 1.0
            times = [p["at"] for p in series["samples"]]
            assert len(times) >= 2 and times == sorted(times)
            assert all(t.endswith("Z") for t in times)
            few = _samples(c, iid, minutes="10", points="1")
            assert len(few["samples"]) == 1 and few["step_s"] == pytest.approx(600.0)

            _refuses_bad_values(c, iid)
            with stranger.client() as other:
                r = other.get(f"/instances/{iid}/metrics")
                assert r.status_code == 404 and fault(r)[0] == "itemNotFound"
                assert iid not in json.dumps(other.get("/instances").json())

            shown = server.cli("metrics", iid, "--minutes", "10", "--json", creds=admin)
            assert json.loads(shown.stdout)["metrics"]["samples"], shown.stdout
            table = server.cli("metrics", "history-pg", "--minutes", "10", creds=admin)
            assert "transactions/s" in table.stdout and "history-pg" in table.stdout
            refused = server.cli("metrics", iid, "--minutes", "0", creds=admin, check=False)
            assert refused.returncode == 1 and "'minutes' must be between" in refused.stderr

            assert _stored_samples(server, iid) > 0
        finally:
            delete_instances(c, ids=made)
        for gone in made:
            wait_gone(c, gone)
            assert _stored_samples(server, gone) == 0, "deleting an instance removes its samples"
            assert c.get(f"/instances/{gone}/metrics").status_code == 404


def _refuses_bad_values(c: httpx.Client, iid: str) -> None:
    before = _samples(c, iid, minutes="10")["samples"]
    for params, says in (
        ({"minutes": "0"}, "'minutes' must be between 1 and"),
        ({"minutes": "soon"}, "minutes"),
        ({"since": "not-a-time"}, "since"),
        ({"since": "2026-01-01T00:00:00", "minutes": "5"}, "either 'since' or 'minutes'"),
        ({"since": "2026-01-02T00:00:00", "until": "2026-01-01T00:00:00"}, "before 'until'"),
        ({"points": "0"}, "'points' must be between 1 and"),
    ):
        r = c.get(f"/instances/{iid}/metrics", params=params)
        name, code, message = fault(r)
        assert (name, code) == ("badRequest", 400), (params, r.text)
        assert says in message, (params, message)
    after = _samples(c, iid, minutes="10")["samples"]
    assert after[: len(before)] == before, "a refused request changes nothing"
