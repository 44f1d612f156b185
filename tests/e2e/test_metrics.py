"""``/metrics`` scraped from a real server after real activity on a real PostgreSQL and a
real Redis instance: the control-plane figures move, and each instance's engine figures
(gathered by the agent, sent with heartbeats) are there and plausible."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.support.api import create_body, delete_instances, wait_instance
from tests.support.backups import take_backup, wait_verified
from tests.support.processes import CofferServer, Credentials, wait_for

pytestmark = pytest.mark.integration

Labels = frozenset[tuple[str, str]]
Samples = dict[str, dict[Labels, float]]


def scrape(server: CofferServer) -> Samples:
    """Every sample of ``/metrics`` (asked without any token): name → labels → value."""
    r = httpx.get(f"{server.url}/metrics", timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 if none)."""
    want = set(labels.items())
    return sum(v for key, v in samples.get(name, {}).items() if want <= key)


def of_instance(samples: Samples, name: str, iid: str) -> float | None:
    found = [v for key, v in samples.get(name, {}).items() if ("instance_id", iid) in key]
    assert len(found) <= 1, (name, found)
    return found[0] if found else None


@contextmanager
def pg_session(inst: dict[str, Any]) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(
        host=inst["ip"][0],
        port=inst["port"],
        user="app",
        password="app-secret-1",
        dbname="shop",
        connect_timeout=5,
        autocommit=True,
    ) as conn:
        yield conn


def redis_body(name: str) -> dict[str, Any]:
    return {
        "instance": {
            "name": name,
            "flavorRef": "tiny",
            "volume": {"size": 1},
            "datastore": {"type": "redis", "version": "7.0"},
            "users": [{"name": "app", "password": "app-secret-1"}],
        }
    }


def test_metrics_after_real_activity(server: CofferServer, admin: Credentials) -> None:
    before = scrape(server)
    made: list[str] = []
    backup_id: str | None = None
    with admin.client() as c:
        try:
            r = c.post("/instances", json=create_body("metrics-pg"))
            assert r.status_code == 200, r.text
            made.append(r.json()["instance"]["id"])
            r = c.post("/instances", json=redis_body("metrics-redis"))
            assert r.status_code == 200, r.text
            made.append(r.json()["instance"]["id"])
            pg, rd = (wait_instance(c, iid) for iid in made)
            backup_id = take_backup(c, pg["id"], "metrics-full")["id"]

            with (
                pg_session(pg) as conn,
                redis.Redis(
                    host=rd["ip"][0],
                    port=rd["port"],
                    username="app",
                    password="app-secret-1",
                    socket_timeout=5,
                ) as cache,
            ):
                conn.execute("CREATE TABLE IF NOT EXISTS hits (n int)")

                def busy_then_scrape() -> Samples | None:
                    """Real work on both engines (sessions held open), then a scrape that
                    shows it, or None while the agent has not reported it yet."""
                    for n in range(50):
                        conn.execute("INSERT INTO hits VALUES (%s)", (n,))
                        cache.incr("hits")
                    samples = scrape(server)
                    for iid in made:
                        rate = of_instance(
                            samples, "coffer_instance_transactions_per_second", iid
                        ) or of_instance(samples, "coffer_instance_commands_per_second", iid)
                        connections = of_instance(samples, "coffer_instance_connections", iid)
                        if not rate or connections is None or connections < 1:
                            return None
                    return samples

                after = wait_for(busy_then_scrape, 60, "engine activity in /metrics")
            _check_instances(after, admin, pg, rd)
            # a workflow's last steps may still run when what it did is visible
            after = wait_for(
                lambda: _workflows_ended(before, scrape(server)), 60, "workflow ends counted"
            )
            _check_control_plane(before, after, server)
        finally:
            if backup_id is not None:
                wait_verified(c, backup_id)
                assert c.delete(f"/backups/{backup_id}").status_code in (202, 404)
            delete_instances(c, ids=made)
    gone = scrape(server)
    for iid in made:
        assert of_instance(gone, "coffer_instance_up", iid) is None, "deleted: no series left"


def _check_instances(
    after: Samples, admin: Credentials, pg: dict[str, Any], rd: dict[str, Any]
) -> None:
    for inst, datastore in ((pg, "postgresql"), (rd, "redis")):
        labels = {
            ("instance_id", inst["id"]),
            ("instance", inst["name"]),
            ("project_id", admin.project_id),
            ("datastore", datastore),
        }
        (up_labels,) = [k for k in after["coffer_instance_up"] if ("instance_id", inst["id"]) in k]
        assert up_labels == labels
        assert after["coffer_instance_up"][up_labels] == 1.0
        assert (of_instance(after, "coffer_instance_volume_used_bytes", inst["id"]) or 0) > 0
        assert of_instance(after, "coffer_instance_volume_size_bytes", inst["id"]) == 1024**3
        assert of_instance(after, "coffer_instance_replication_lag_seconds", inst["id"]) is None
    assert (of_instance(after, "coffer_instance_transactions_per_second", pg["id"]) or 0) > 0
    assert (of_instance(after, "coffer_instance_commands_per_second", rd["id"]) or 0) > 0
    assert of_instance(after, "coffer_instance_commands_per_second", pg["id"]) is None
    age = of_instance(after, "coffer_instance_last_backup_age_seconds", pg["id"])
    assert age is not None and 0 <= age < 3600, "the backup just taken"
    assert of_instance(after, "coffer_instance_last_backup_age_seconds", rd["id"]) is None


#: workflows the test runs, and how many times at least
RUNS = {"instance.create": 2, "backup.take": 1}


def _workflows_ended(before: Samples, after: Samples) -> Samples | None:
    """``after`` once it counts every run of ``RUNS`` as completed."""
    for name, runs in RUNS.items():
        done = value(after, "coffer_workflows_finished_total", workflow=name, outcome="completed")
        earlier = value(
            before, "coffer_workflows_finished_total", workflow=name, outcome="completed"
        )
        if done - earlier < runs:
            return None
    return after


def _check_control_plane(before: Samples, after: Samples, server: CofferServer) -> None:
    route = "/v1.0/{project_id}/instances"
    created = value(after, "coffer_http_requests_total", method="POST", route=route, status="200")
    assert (
        created
        - value(before, "coffer_http_requests_total", method="POST", route=route, status="200")
        >= 2
    )
    assert value(after, "coffer_http_request_duration_seconds_count", route=route) > value(
        before, "coffer_http_request_duration_seconds_count", route=route
    )
    for name, runs in RUNS.items():
        started = value(after, "coffer_workflows_started_total", workflow=name)
        assert started - value(before, "coffer_workflows_started_total", workflow=name) >= runs
        done = value(after, "coffer_workflows_finished_total", workflow=name, outcome="completed")
        assert (
            done
            - value(before, "coffer_workflows_finished_total", workflow=name, outcome="completed")
            >= runs
        )
        assert value(after, "coffer_workflow_duration_seconds_count", workflow=name) >= runs
    beats = after["coffer_agent_heartbeats_total"]
    assert beats and sum(beats.values()) > sum(before["coffer_agent_heartbeats_total"].values())
    ages = after["coffer_agent_heartbeat_age_seconds"].values()
    assert ages and min(ages) < 60, "the local agent is alive"
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert server.admin().token not in text and "app-secret-1" not in text
