"""``/metrics``: the rendering of recorded figures and scrape snapshots, and the route,
its request counting and the heartbeats it reads, on a real app over a real (SQLite)
metadata database migrated as the server migrates it."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from coffer.api.app import create_app
from coffer.clock import utcnow
from coffer.contracts.agent_v1 import (
    EngineActivity,
    Heartbeat,
    InstanceObservation,
    RegisterRequest,
)
from coffer.db.models import Backup, Datastore, DatastoreVersion, Flavor, Instance
from coffer.server import build_runtime
from coffer.services import agents, bootstrap, projects
from coffer.services.metrics import Metrics
from coffer.services.metrics.render import render
from coffer.services.metrics.snapshot import HostRow, InstanceRow, Snapshot
from coffer.services.runtime import Runtime
from coffer.settings import ServerSettings

Key = tuple[str, frozenset[tuple[str, str]]]
NOW = 1_800_000_000.0


def parse(text: bytes | str) -> dict[Key, float]:
    """Every sample of an exposition text: (sample name, labels) → value."""
    if isinstance(text, bytes):
        text = text.decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def named(samples: dict[Key, float], name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def labels_of(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


# -- rendering ----------------------------------------------------------------------------

PG = InstanceRow("i-pg", "orders", "p1", "postgresql", 2, 5_000_000, lag_s=None)
REPLICA = InstanceRow("i-rep", "orders-r", "p1", "postgresql", 2, 4_000_000, lag_s=1.5)
REDIS = InstanceRow("i-rd", "cache", "p2", "redis", 1, None, lag_s=None)
#: NOW is 2027-01-15 08:00:00 UTC; the host's agent was last heard 30 s before
HOSTS = [HostRow("h1", "node-1", datetime(2027, 1, 15, 7, 59, 30))]


def _label(row: InstanceRow) -> frozenset[tuple[str, str]]:
    return labels_of(
        instance_id=row.id, instance=row.name, project_id=row.project_id, datastore=row.datastore
    )


def _heartbeat(*observations: tuple[str, EngineActivity | None, int]) -> Heartbeat:
    return Heartbeat(
        seq=1,
        instances=[
            InstanceObservation(
                instance_id=iid, service_status="healthy", seq=seq, activity=activity
            )
            for iid, activity, seq in observations
        ],
    )


def _render(metrics: Metrics, snapshot: Snapshot, now: float = NOW) -> dict[Key, float]:
    return parse(render(metrics, snapshot, now=now, stale_after_s=15.0))


def test_instances_are_rendered_with_their_activity_and_stored_figures() -> None:
    metrics = Metrics(clock=lambda: NOW - 2)
    pg_seen = EngineActivity(up=True, connections=4, kind="transactions", rate_per_s=12.5)
    redis_seen = EngineActivity(up=True, connections=0, kind="commands", rate_per_s=3.0)
    metrics.heartbeat(
        "h1", _heartbeat(("i-pg", pg_seen, 5), ("i-rd", redis_seen, 5)), accepted=True
    )
    snapshot = Snapshot(
        instances=[PG, REPLICA, REDIS],
        hosts=HOSTS,
        last_backup={"i-pg": datetime(2027, 1, 15, 7, 0, 0)},
    )
    samples = _render(metrics, snapshot)

    assert named(samples, "coffer_instance_up") == {
        _label(PG): 1.0,
        _label(REPLICA): 0.0,  # nothing reported: not known to be up
        _label(REDIS): 1.0,
    }
    assert named(samples, "coffer_instance_connections") == {_label(PG): 4.0, _label(REDIS): 0.0}
    assert named(samples, "coffer_instance_transactions_per_second") == {_label(PG): 12.5}
    assert named(samples, "coffer_instance_commands_per_second") == {_label(REDIS): 3.0}
    assert named(samples, "coffer_instance_queries_per_second") == {}
    assert named(samples, "coffer_instance_replication_lag_seconds") == {_label(REPLICA): 1.5}
    assert named(samples, "coffer_instance_volume_used_bytes") == {
        _label(PG): 5_000_000.0,
        _label(REPLICA): 4_000_000.0,
    }
    assert named(samples, "coffer_instance_volume_size_bytes")[_label(REDIS)] == 1024**3
    assert named(samples, "coffer_instance_last_backup_age_seconds") == {
        _label(PG): pytest.approx(3600.0)
    }
    host = labels_of(host_id="h1", host="node-1")
    assert named(samples, "coffer_agent_heartbeats_total") == {host: 1.0}
    assert named(samples, "coffer_agent_heartbeat_age_seconds") == {host: pytest.approx(30.0)}


def test_stale_or_down_activity_shows_the_instance_down_without_figures() -> None:
    metrics = Metrics(clock=lambda: NOW - 60)  # received a minute ago: stale
    seen = EngineActivity(up=True, connections=4, kind="transactions", rate_per_s=1.0)
    metrics.heartbeat("h1", _heartbeat(("i-pg", seen, 5)), accepted=True)
    samples = _render(metrics, Snapshot([PG], HOSTS, {}))
    assert named(samples, "coffer_instance_up") == {_label(PG): 0.0}
    assert named(samples, "coffer_instance_connections") == {}
    assert named(samples, "coffer_instance_transactions_per_second") == {}

    metrics = Metrics(clock=lambda: NOW)
    metrics.heartbeat("h1", _heartbeat(("i-pg", EngineActivity(up=False), 5)), accepted=True)
    samples = _render(metrics, Snapshot([PG], HOSTS, {}))
    assert named(samples, "coffer_instance_up") == {_label(PG): 0.0}
    assert named(samples, "coffer_instance_connections") == {}


def test_cpu_and_memory_are_shown_while_fresh_even_when_the_engine_is_down() -> None:
    metrics = Metrics(clock=lambda: NOW - 2)
    busy = EngineActivity(
        up=True, connections=1, kind="transactions", cpu_percent=37.5, memory_bytes=9_000_000
    )
    stopped = EngineActivity(up=False, cpu_percent=0.0, memory_bytes=4096)
    first = EngineActivity(up=True, connections=0, kind="commands", memory_bytes=1)
    metrics.heartbeat(
        "h1",
        _heartbeat(("i-pg", busy, 5), ("i-rep", stopped, 5), ("i-rd", first, 5)),
        accepted=True,
    )
    samples = _render(metrics, Snapshot([PG, REPLICA, REDIS], HOSTS, {}))
    assert named(samples, "coffer_instance_cpu_percent") == {
        _label(PG): 37.5,
        _label(REPLICA): 0.0,
    }, "no CPU figure at the agent's first reading"
    assert named(samples, "coffer_instance_memory_bytes") == {
        _label(PG): 9_000_000.0,
        _label(REPLICA): 4096.0,
        _label(REDIS): 1.0,
    }
    stale = _render(metrics, Snapshot([PG], HOSTS, {}), now=NOW + 60)
    assert named(stale, "coffer_instance_cpu_percent") == {}
    assert named(stale, "coffer_instance_memory_bytes") == {}


def test_a_stale_heartbeat_or_older_observation_never_replaces_activity() -> None:
    metrics = Metrics(clock=lambda: NOW)
    new = EngineActivity(up=True, connections=9, kind="transactions", rate_per_s=2.0)
    old = EngineActivity(up=True, connections=1, kind="transactions", rate_per_s=99.0)
    metrics.heartbeat("h1", _heartbeat(("i-pg", new, 10)), accepted=True)
    metrics.heartbeat("h1", _heartbeat(("i-pg", old, 9)), accepted=True)
    metrics.heartbeat("h1", _heartbeat(("i-pg", old, 11)), accepted=False)
    samples = _render(metrics, Snapshot([PG], HOSTS, {}))
    assert named(samples, "coffer_instance_connections") == {_label(PG): 9.0}
    assert named(samples, "coffer_agent_heartbeats_total") == {
        labels_of(host_id="h1", host="node-1"): 3.0
    }, "every heartbeat received counts, stale ones too"


def test_activity_of_instances_gone_is_dropped() -> None:
    metrics = Metrics(clock=lambda: NOW)
    seen = EngineActivity(up=True, connections=1, kind="commands", rate_per_s=1.0)
    metrics.heartbeat("h1", _heartbeat(("i-gone", seen, 1), ("i-rd", seen, 1)), accepted=True)
    samples = _render(metrics, Snapshot([REDIS], HOSTS, {}))
    assert "i-gone" not in str(samples)
    assert set(metrics.activity(["i-gone", "i-rd"])) == {"i-rd"}, "forgotten at the scrape"


def test_control_plane_figures_are_rendered() -> None:
    metrics = Metrics()
    metrics.request("GET", "/v1.0/{project_id}/instances", 200, 0.02)
    metrics.request("GET", "/v1.0/{project_id}/instances", 200, 0.03)
    metrics.workflow_started("instance.create")
    metrics.workflow_finished("instance.create", "completed", 4.0)
    samples = _render(metrics, Snapshot([], [], {}))
    route = "/v1.0/{project_id}/instances"
    assert named(samples, "coffer_http_requests_total") == {
        labels_of(method="GET", route=route, status="200"): 2.0
    }
    assert named(samples, "coffer_http_request_duration_seconds_count") == {
        labels_of(route=route): 2.0
    }
    assert named(samples, "coffer_workflows_started_total") == {
        labels_of(workflow="instance.create"): 1.0
    }
    assert named(samples, "coffer_workflows_finished_total") == {
        labels_of(workflow="instance.create", outcome="completed"): 1.0
    }
    assert named(samples, "coffer_workflow_duration_seconds_sum") == {
        labels_of(workflow="instance.create"): 4.0
    }


def test_each_metrics_has_a_registry_of_its_own() -> None:
    first, second = Metrics(), Metrics()
    first.request("GET", "/healthz", 200, 0.001)
    samples = _render(second, Snapshot([], [], {}))
    assert named(samples, "coffer_http_requests_total") == {}


# -- the route, on a real app and database ------------------------------------------------


@pytest.fixture(scope="module")
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    data_dir = Path(tempfile.mkdtemp(prefix="cf-metrics-"))
    request.addfinalizer(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    rt = build_runtime(ServerSettings(data_dir=data_dir))
    bootstrap.seed(rt)
    yield rt
    rt.sessions.kw["bind"].dispose()


def _call(rt: Runtime, *requests: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    """Send ``requests`` (method, path, httpx keyword arguments) to a fresh app of ``rt``."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://coffer") as client:
            return [await client.request(m, path, **kw) for m, path, kw in requests]

    return asyncio.run(run())


def _scrape(rt: Runtime) -> dict[Key, float]:
    (response,) = _call(rt, ("GET", "/metrics", {}))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def _add_instance(rt: Runtime, project_id: str, host_id: str, name: str, **extra: Any) -> str:
    iid = str(uuid.uuid4())
    now = utcnow()
    with rt.sessions.begin() as s:
        version = s.scalar(
            select(DatastoreVersion)
            .join(Datastore, Datastore.id == DatastoreVersion.datastore_id)
            .where(Datastore.name == "postgresql")
        )
        flavor = s.scalars(select(Flavor)).first()
        assert version is not None and flavor is not None
        s.add(
            Instance(
                id=iid,
                project_id=project_id,
                name=name,
                flavor_id=flavor.id,
                volume_gb=3,
                datastore_version_id=version.id,
                host_id=host_id,
                port=0,
                task_status="NONE",
                service_status="healthy",
                created=now,
                updated=now,
                **extra,
            )
        )
    return iid


def _add_backup(
    rt: Runtime, project_id: str, iid: str, state: str, updated: datetime, *, deleted: bool = False
) -> None:
    with rt.sessions.begin() as s:
        version = s.scalar(select(Instance.datastore_version_id).where(Instance.id == iid))
        s.add(
            Backup(
                id=str(uuid.uuid4()),
                project_id=project_id,
                instance_id=iid,
                name="b",
                datastore_version_id=version,
                state=state,
                location="x",
                container="c",
                data_key_sealed="k",
                created=updated - timedelta(minutes=1),
                updated=updated,
                deleted=deleted,
            )
        )


def test_metrics_needs_no_token_and_counts_requests_by_route_template(runtime: Runtime) -> None:
    project = projects.create_project(runtime, "metrics-routes")
    listed, missing, refused = _call(
        runtime,
        (
            "GET",
            f"/v1.0/{project.project_id}/instances",
            {"headers": {"X-Auth-Token": project.token}},
        ),
        ("GET", "/no/such/place", {}),
        ("POST", "/metrics", {}),
    )
    assert listed.status_code == 200
    assert missing.status_code == 404
    assert refused.status_code == 405 and refused.json()["badMethod"]["code"] == 405
    requests = named(_scrape(runtime), "coffer_http_requests_total")
    route = "/v1.0/{project_id}/instances"
    assert requests[labels_of(method="GET", route=route, status="200")] >= 1
    assert requests[labels_of(method="GET", route="<unmatched>", status="404")] >= 1
    assert requests[labels_of(method="POST", route="/metrics", status="405")] >= 1
    shown = " ".join(value for labels in requests for _, value in labels)
    assert project.project_id not in shown and project.token not in shown
    assert "/no/such/place" not in shown, "raw paths never become labels"


def test_heartbeats_bring_activity_and_the_snapshot_the_stored_figures(runtime: Runtime) -> None:
    project = projects.create_project(runtime, "metrics-hb")
    token = agents.create_join_token(runtime)
    host = agents.register(
        runtime, RegisterRequest(join_token=token, host_name="metrics-node", address="127.0.0.1")
    )
    replication = '{"role": "replica", "lag_s": 2.5, "streaming": true}'
    iid = _add_instance(
        runtime, project.project_id, host.host_id, "shop", replication_json=replication
    )
    other = _add_instance(runtime, project.project_id, host.host_id, "quiet")
    _add_backup(runtime, project.project_id, iid, "COMPLETED", utcnow() - timedelta(hours=2))
    _add_backup(runtime, project.project_id, iid, "COMPLETED", utcnow() - timedelta(hours=1))
    _add_backup(runtime, project.project_id, iid, "FAILED", utcnow())
    _add_backup(runtime, project.project_id, iid, "COMPLETED", utcnow(), deleted=True)

    seq = 10**18
    body = Heartbeat(
        seq=seq,
        instances=[
            InstanceObservation(
                instance_id=iid,
                service_status="healthy",
                seq=seq,
                volume_used_bytes=123456,
                activity=EngineActivity(
                    up=True, connections=2, kind="transactions", rate_per_s=7.5
                ),
            )
        ],
    ).model_dump()
    bad, good, bogus = _call(
        runtime,
        ("POST", "/agent/v1/heartbeat", {"json": body, "headers": {"X-Host-Credential": "nope"}}),
        (
            "POST",
            "/agent/v1/heartbeat",
            {"json": body, "headers": {"X-Host-Credential": host.credential}},
        ),
        (
            "POST",
            "/agent/v1/heartbeat",
            {
                "json": {
                    **body,
                    "instances": [
                        {**body["instances"][0], "activity": {"up": True, "kind": "rows"}}
                    ],
                },
                "headers": {"X-Host-Credential": host.credential},
            },
        ),
    )
    assert bad.status_code == 401
    assert good.status_code == 200 and good.json()["accepted"] is True
    assert bogus.status_code in (400, 422), "a heartbeat with an unknown kind is refused"

    samples = _scrape(runtime)
    shop = labels_of(
        instance_id=iid, instance="shop", project_id=project.project_id, datastore="postgresql"
    )
    quiet = labels_of(
        instance_id=other, instance="quiet", project_id=project.project_id, datastore="postgresql"
    )
    assert named(samples, "coffer_instance_up")[shop] == 1.0
    assert named(samples, "coffer_instance_up")[quiet] == 0.0
    assert named(samples, "coffer_instance_connections")[shop] == 2.0
    assert named(samples, "coffer_instance_transactions_per_second")[shop] == 7.5
    assert named(samples, "coffer_instance_volume_used_bytes")[shop] == 123456.0
    assert named(samples, "coffer_instance_volume_size_bytes")[shop] == 3 * 1024**3
    assert named(samples, "coffer_instance_replication_lag_seconds")[shop] == 2.5
    assert quiet not in named(samples, "coffer_instance_replication_lag_seconds")
    age = named(samples, "coffer_instance_last_backup_age_seconds")
    assert 3500 < age[shop] < 3700, "the latest completed backup, not a failed or deleted one"
    assert quiet not in age
    node = labels_of(host_id=host.host_id, host="metrics-node")
    assert named(samples, "coffer_agent_heartbeats_total")[node] == 1.0, (
        "only the authenticated one"
    )
    assert 0 <= named(samples, "coffer_agent_heartbeat_age_seconds")[node] < 60
