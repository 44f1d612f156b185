"""The metrics history on a real app over a real (SQLite) metadata database migrated as
the server migrates it: heartbeats leave samples at a bounded rate, old ones are pruned,
``GET /instances/{id}/metrics`` reads them back and refuses bad requests with Trove's
envelope, and another project's instance is not found."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from coffer.api.app import create_app
from coffer.clock import utcnow
from coffer.contracts.agent_v1 import (
    EngineActivity,
    Heartbeat,
    InstanceObservation,
    RegisterRequest,
)
from coffer.contracts.instance_metrics import InstanceMetricsResponse
from coffer.db.models import Datastore, DatastoreVersion, Flavor, Instance, MetricSample
from coffer.server import build_runtime
from coffer.services import agents, bootstrap, metric_history, projects
from coffer.services.projects import Credentials
from coffer.services.runtime import Runtime
from coffer.services.sample_gate import SampleGate
from coffer.settings import ServerSettings


@pytest.fixture(scope="module")
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    data_dir = Path(tempfile.mkdtemp(prefix="cf-history-"))
    request.addfinalizer(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    rt = build_runtime(ServerSettings(data_dir=data_dir, metrics_sample_interval_s=0.001))
    bootstrap.seed(rt)
    yield rt
    rt.sessions.kw["bind"].dispose()


def _call(rt: Runtime, *requests: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://coffer") as client:
            return [await client.request(m, path, **kw) for m, path, kw in requests]

    return asyncio.run(run())


def _add_instance(rt: Runtime, project_id: str, host_id: str, **extra: Any) -> str:
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
                name=f"i-{iid[:6]}",
                flavor_id=flavor.id,
                volume_gb=2,
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


class _Setup:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.project: Credentials = projects.create_project(rt, f"p-{uuid.uuid4().hex[:6]}")
        self.other: Credentials = projects.create_project(rt, f"o-{uuid.uuid4().hex[:6]}")
        token = agents.create_join_token(rt)
        self.host = agents.register(
            rt,
            RegisterRequest(
                join_token=token, host_name=f"node-{uuid.uuid4().hex[:8]}", address="127.0.0.1"
            ),
        )
        self.seq = 10**18

    def beat(self, *observations: InstanceObservation) -> httpx.Response:
        self.seq += 1
        body = Heartbeat(seq=self.seq, instances=list(observations)).model_dump()
        (r,) = _call(
            self.rt,
            (
                "POST",
                "/agent/v1/heartbeat",
                {"json": body, "headers": {"X-Host-Credential": self.host.credential}},
            ),
        )
        assert r.status_code == 200, r.text
        return r

    def get(self, path: str, creds: Credentials | None = None, **params: str) -> httpx.Response:
        who = creds or self.project
        (r,) = _call(
            self.rt,
            (
                "GET",
                f"/v1.0/{who.project_id}{path}",
                {"headers": {"X-Auth-Token": who.token}, "params": params},
            ),
        )
        return r


def _observation(iid: str, n: int, **over: Any) -> InstanceObservation:
    fields: dict[str, Any] = {
        "instance_id": iid,
        "service_status": "healthy",
        "seq": 10**18 + n,
        "volume_used_bytes": 1_000_000 + n,
        "activity": EngineActivity(
            up=True,
            connections=n,
            kind="transactions",
            rate_per_s=10.0 * n,
            cpu_percent=1.5 * n,
            memory_bytes=50_000_000 + n,
        ),
    }
    fields.update(over)
    return InstanceObservation(**fields)


def _count(rt: Runtime, iid: str) -> int:
    with rt.sessions() as s:
        return int(s.scalar(select(func.count()).where(MetricSample.instance_id == iid)) or 0)


def test_heartbeats_leave_samples_read_back_as_a_series(runtime: Runtime) -> None:
    setup = _Setup(runtime)
    replica = '{"role": "replica", "lag_s": 0.5, "streaming": true}'
    iid = _add_instance(runtime, setup.project.project_id, setup.host.host_id)
    lagging = _add_instance(
        runtime, setup.project.project_id, setup.host.host_id, replication_json=replica
    )
    for n in range(1, 4):
        setup.beat(_observation(iid, n), _observation(lagging, n))
    setup.beat(_observation(iid, 4, activity=EngineActivity(up=False, memory_bytes=7)))

    r = setup.get(f"/instances/{iid}/metrics")
    assert r.status_code == 200, r.text
    body = InstanceMetricsResponse.model_validate(r.json()).metrics
    assert body.instance_id == iid and body.rate_kind == "transactions"
    assert body.sample_interval_s == 0.001 and body.retention_s == 86400
    assert body.step_s is None
    assert body.until - body.since == timedelta(hours=1)
    assert [p.connections for p in body.samples] == [1, 2, 3, None], "down: no connections"
    assert [p.rate_per_s for p in body.samples] == [10.0, 20.0, 30.0, None]
    assert [p.cpu_percent for p in body.samples] == [1.5, 3.0, 4.5, None]
    assert [p.memory_bytes for p in body.samples] == [50_000_001, 50_000_002, 50_000_003, 7]
    assert [p.up for p in body.samples] == [True, True, True, False]
    assert body.samples[0].volume_used_bytes == 1_000_001
    assert {p.volume_size_bytes for p in body.samples} == {2 * 1024**3}
    assert {p.replication_lag_s for p in body.samples} == {None}
    assert all(p.at.utcoffset() == timedelta(0) for p in body.samples)
    assert r.json()["metrics"]["samples"][0]["at"].endswith("Z")

    lag = setup.get(f"/instances/{lagging}/metrics").json()["metrics"]["samples"]
    assert [p["replication_lag_s"] for p in lag] == [0.5, 0.5, 0.5]

    thinned = setup.get(f"/instances/{iid}/metrics", points="2").json()["metrics"]
    assert len(thinned["samples"]) <= 2 and thinned["step_s"] == pytest.approx(1800.0)

    past = (utcnow() - timedelta(hours=3)).isoformat()
    old = setup.get(f"/instances/{iid}/metrics", until=past).json()["metrics"]
    assert old["samples"] == [], "nothing was kept then"


def test_samples_are_kept_at_most_once_an_interval(runtime: Runtime) -> None:
    setup = _Setup(runtime)
    iid = _add_instance(runtime, setup.project.project_id, setup.host.host_id)
    settings = runtime.settings
    runtime.settings = settings.model_copy(update={"metrics_sample_interval_s": 3600})
    try:
        for n in range(5):
            setup.beat(_observation(iid, n))
    finally:
        runtime.settings = settings
    assert _count(runtime, iid) == 1


def test_stale_heartbeats_and_unknown_or_foreign_instances_leave_nothing(
    runtime: Runtime,
) -> None:
    setup = _Setup(runtime)
    iid = _add_instance(runtime, setup.project.project_id, setup.host.host_id)
    token = agents.create_join_token(runtime)
    elsewhere = agents.register(
        runtime,
        RegisterRequest(
            join_token=token, host_name=f"node-{uuid.uuid4().hex[:8]}", address="127.0.0.2"
        ),
    )
    theirs = _add_instance(runtime, setup.project.project_id, elsewhere.host_id)
    setup.beat(_observation(iid, 1), _observation(theirs, 1), _observation("no-such", 1))
    assert _count(runtime, iid) == 1
    assert _count(runtime, theirs) == 0, "a host reports only its own instances"
    assert _count(runtime, "no-such") == 0
    setup.seq -= 5  # an older heartbeat: dropped, so no sample either
    body = Heartbeat(seq=setup.seq, instances=[_observation(iid, 2)]).model_dump()
    (r,) = _call(
        runtime,
        (
            "POST",
            "/agent/v1/heartbeat",
            {"json": body, "headers": {"X-Host-Credential": setup.host.credential}},
        ),
    )
    assert r.json()["accepted"] is False
    assert _count(runtime, iid) == 1


def test_old_samples_are_pruned_and_an_instance_forgotten(runtime: Runtime) -> None:
    setup = _Setup(runtime)
    iid = _add_instance(runtime, setup.project.project_id, setup.host.host_id)
    with runtime.sessions.begin() as s:
        s.add(MetricSample(instance_id=iid, at=utcnow() - timedelta(days=2), up=True))
        s.add(MetricSample(instance_id=iid, at=utcnow() - timedelta(hours=23), up=True))
    runtime.samples = SampleGate()  # as after a restart: the first heartbeat prunes
    setup.beat(_observation(iid, 1))
    assert _count(runtime, iid) == 2, "the two-day-old one went, the other two stay"
    with runtime.sessions.begin() as s:
        metric_history.forget(s, iid)
    assert _count(runtime, iid) == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2027-13-01T00:00:00"}, "until"),
        ({"minutes": "ten"}, "minutes"),
        ({"minutes": ""}, "minutes"),
        ({"minutes": "0"}, "'minutes' must be between 1 and"),
        ({"minutes": "5", "since": "2027-01-01T00:00:00"}, "either 'since' or 'minutes'"),
        ({"since": "2027-01-02T00:00:00", "until": "2027-01-01T00:00:00"}, "before 'until'"),
        ({"since": "2026-01-01T00:00:00", "until": "2027-01-01T00:00:00"}, "at most 31 days"),
        ({"until": "0001-01-01T00:10:00"}, "outside the years"),
        ({"points": "0"}, "'points' must be between 1 and"),
        ({"points": "many"}, "points"),
    ],
)
def test_bad_query_values_are_refused_with_trove_envelope(
    runtime: Runtime, params: dict[str, str], message: str
) -> None:
    setup = _Setup(runtime)
    iid = _add_instance(runtime, setup.project.project_id, setup.host.host_id)
    r = setup.get(f"/instances/{iid}/metrics", **params)
    assert r.status_code == 400, r.text
    assert r.json()["badRequest"]["code"] == 400
    assert message in r.json()["badRequest"]["message"]


def test_another_projects_or_a_deleted_instance_is_not_found(runtime: Runtime) -> None:
    setup = _Setup(runtime)
    iid = _add_instance(runtime, setup.project.project_id, setup.host.host_id)
    setup.beat(_observation(iid, 1))
    r = setup.get(f"/instances/{iid}/metrics", creds=setup.other)
    assert r.status_code == 404 and "could not be found" in r.json()["itemNotFound"]["message"]
    r = setup.get("/instances/no-such-id/metrics")
    assert r.status_code == 404
    (r,) = _call(
        runtime,
        (
            "GET",
            f"/v1.0/{setup.other.project_id}/instances/{iid}/metrics",
            {"headers": {"X-Auth-Token": setup.project.token}},
        ),
    )
    assert r.status_code == 403, "a token for another project's path"
    with runtime.sessions.begin() as s:
        inst = s.get(Instance, iid)
        assert inst is not None
        inst.deleted = True
    assert setup.get(f"/instances/{iid}/metrics").status_code == 404


def test_the_route_is_described_with_its_response_schema(runtime: Runtime) -> None:
    (r,) = _call(runtime, ("GET", "/openapi.json", {}))
    op = r.json()["paths"]["/v1.0/{project_id}/instances/{instance_id}/metrics"]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"since", "until", "minutes", "points"}
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/InstanceMetricsResponse")
