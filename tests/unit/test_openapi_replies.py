"""The reply models /openapi.json declares match what the views send, for resources in
every shape the e2e schemathesis run cannot create without engines: instances (replica
source, replica, cluster member, faulted, with volume figures), clusters, backups in each
state, schedules, configuration groups. Rows are written straight into a real metadata
database; replies are read through the real app (ASGI) and validated strictly against the
model the route declares."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from sqlalchemy import select

from coffer.api.app import create_app
from coffer.clock import utcnow
from coffer.contracts.agent_v1 import RegisterRequest
from coffer.db.models import (
    Backup,
    BackupSchedule,
    Cluster,
    Datastore,
    DatastoreVersion,
    Flavor,
    Instance,
)
from coffer.server import build_runtime
from coffer.services import agents, bootstrap, projects
from coffer.services.runtime import Runtime
from coffer.settings import ServerSettings


@pytest.fixture(scope="module")
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    data_dir = Path(tempfile.mkdtemp(prefix="cf-replies-"))
    request.addfinalizer(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    rt = build_runtime(ServerSettings(data_dir=data_dir))
    bootstrap.seed(rt)
    yield rt
    rt.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime)


def _version(rt: Runtime, datastore: str) -> DatastoreVersion:
    with rt.sessions() as s:
        version = s.scalar(
            select(DatastoreVersion)
            .join(Datastore, Datastore.id == DatastoreVersion.datastore_id)
            .where(Datastore.name == datastore)
        )
    assert version is not None
    return version


def _add_instance(
    rt: Runtime, project_id: str, host_id: str, datastore: str = "postgresql", **extra: Any
) -> str:
    iid = str(uuid.uuid4())
    now = utcnow()
    with rt.sessions.begin() as s:
        flavor = s.scalars(select(Flavor)).first()
        assert flavor is not None
        fields: dict[str, Any] = {
            "task_status": "NONE",
            "service_status": "healthy",
            "service_status_updated": now,
        }
        fields.update(extra)
        s.add(
            Instance(
                id=iid,
                project_id=project_id,
                name=f"i-{iid[:6]}",
                flavor_id=flavor.id,
                volume_gb=2,
                datastore_version_id=_version(rt, datastore).id,
                host_id=host_id,
                port=23456,
                created=now,
                updated=now,
                **fields,
            )
        )
    return iid


def _add_backup(rt: Runtime, project_id: str, iid: str, state: str, **extra: Any) -> str:
    bid = str(uuid.uuid4())
    now = utcnow()
    with rt.sessions.begin() as s:
        version = s.scalar(select(Instance.datastore_version_id).where(Instance.id == iid))
        s.add(
            Backup(
                id=bid,
                project_id=project_id,
                instance_id=iid,
                name=f"b-{state.lower()}",
                datastore_version_id=version,
                state=state,
                location="p/x.zst.enc",
                container="c",
                data_key_sealed="k",
                created=now - timedelta(minutes=1),
                updated=now,
                **extra,
            )
        )
    return bid


@pytest.fixture(scope="module")
def world(runtime: Runtime) -> dict[str, Any]:
    """One project's resources in the shapes that matter, and an admin."""
    rt = runtime
    project = projects.create_project(rt, "replies")
    admin = json.loads(bootstrap.ensure_admin_credentials(rt).read_text())
    host = agents.register(
        rt,
        RegisterRequest(
            join_token=agents.create_join_token(rt), host_name="replies", address="127.0.0.1"
        ),
    )
    pid, hid = project.project_id, host.host_id
    now = utcnow()
    source = _add_instance(
        rt,
        pid,
        hid,
        volume_used_bytes=512 * 1024**2,
        auto_failover=True,
        replication_json=json.dumps({"role": "primary", "streaming": None, "position": "0/3"}),
        restorable_until=now,
    )
    replica = _add_instance(
        rt,
        pid,
        hid,
        replica_of_id=source,
        replication_json=json.dumps(
            {"role": "replica", "streaming": True, "lag_s": 0.5, "position": "0/3"}
        ),
    )
    faulted = _add_instance(
        rt,
        pid,
        hid,
        task_status="BUILDING_ERROR",
        service_status="crashed",
        fault_message="the engine did not start",
        fault_details="exit 1",
        fault_created=now,
    )
    cid = str(uuid.uuid4())
    with rt.sessions.begin() as s:
        s.add(
            Cluster(
                id=cid,
                project_id=pid,
                name="cache",
                datastore_version_id=_version(rt, "redis").id,
                task_status="NONE",
                secret_sealed="x",
                fault_message="a member failed",
                fault_created=now,
                created=now,
                updated=now,
            )
        )
    members = [
        _add_instance(
            rt, pid, hid, "redis", cluster_id=cid, cluster_json=json.dumps({"role": "master"})
        )
    ]
    members.append(
        _add_instance(
            rt,
            pid,
            hid,
            "redis",
            cluster_id=cid,
            cluster_json=json.dumps({"role": "replica", "follows": members[0]}),
        )
    )
    backups = [
        _add_backup(
            rt,
            pid,
            source,
            "COMPLETED",
            size_bytes=10**6,
            raw_bytes=3 * 10**6,
            checksum="ab" * 32,
            verify_status="VERIFIED",
            verify_detail="pg_amcheck: ok",
            verified_at=now,
        ),
        _add_backup(rt, pid, source, "BUILDING", progress_bytes=100),
        _add_backup(rt, pid, source, "FAILED", fail_reason="the engine went away"),
    ]
    sid = str(uuid.uuid4())
    with rt.sessions.begin() as s:
        s.add(
            BackupSchedule(
                id=sid,
                project_id=pid,
                instance_id=source,
                name="nightly",
                full_cron="0 3 * * *",
                incremental_cron=None,
                retention="7d",
                last_run="COMPLETED",
                last_run_at=now,
                created=now,
            )
        )
    return {
        "project": project,
        "admin": admin,
        "instances": [source, replica, faulted, *members],
        "cluster": cid,
        "members": members,
        "backups": backups,
        "schedule": sid,
    }


def _declared(app: FastAPI, method: str, template: str) -> tuple[int, type[BaseModel]]:
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path == template and method in route.methods:
            status = route.status_code or 200
            model = route.responses[status]["model"]
            assert isinstance(model, type) and issubclass(model, BaseModel)
            return status, model
    raise AssertionError(f"no route {method} {template}")


def _check(app: FastAPI, token: str, method: str, template: str, path: str, **kw: Any) -> Any:
    """Call ``path`` (an instance of ``template``) and validate the reply strictly."""

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://coffer") as client:
            return await client.request(method, path, headers={"X-Auth-Token": token}, **kw)

    response = asyncio.run(run())
    status, model = _declared(app, method, template)
    assert response.status_code == status, response.text
    model.model_validate_json(response.content, strict=True)
    return response.json()


def test_instance_replies_match_their_models(app: FastAPI, world: dict[str, Any]) -> None:
    project, admin = world["project"], world["admin"]
    base = "/v1.0/{project_id}"
    # the admin sees the project's instances through the project's own path
    for token in (project.token, admin["token"]):
        prefix = f"/v1.0/{project.project_id}"
        listed = _check(app, token, "GET", f"{base}/instances", f"{prefix}/instances")
        detail = _check(
            app,
            token,
            "GET",
            f"{base}/instances/detail",
            f"{prefix}/instances/detail?include_clustered=true&limit=2",
        )
        assert detail["links"]
        for iid in world["instances"]:
            shown = _check(
                app, token, "GET", f"{base}/instances/{{instance_id}}", f"{prefix}/instances/{iid}"
            )
            assert shown["instance"]["id"] == iid
    assert {i["id"] for i in listed["instances"]} >= set(world["instances"][:3])
    one = _check(
        app,
        project.token,
        "GET",
        f"{base}/instances/{{instance_id}}",
        f"/v1.0/{project.project_id}/instances/{world['instances'][0]}",
    )["instance"]
    assert {"replicas", "replication", "auto_failover", "volume"} <= set(one)
    assert "used" in one["volume"]
    prefix = f"/v1.0/{admin['project_id']}"
    _check(app, admin["token"], "GET", f"{base}/mgmt/instances", f"{prefix}/mgmt/instances")
    for iid in world["instances"]:
        _check(
            app,
            admin["token"],
            "GET",
            f"{base}/mgmt/instances/{{instance_id}}",
            f"{prefix}/mgmt/instances/{iid}",
        )


def test_cluster_replies_match_their_models(app: FastAPI, world: dict[str, Any]) -> None:
    project, admin = world["project"], world["admin"]
    base, cid = "/v1.0/{project_id}", world["cluster"]
    prefix = f"/v1.0/{project.project_id}"
    listed = _check(app, project.token, "GET", f"{base}/clusters", f"{prefix}/clusters")
    assert [c["id"] for c in listed["clusters"]] == [cid]
    shown = _check(
        app, project.token, "GET", f"{base}/clusters/{{cluster_id}}", f"{prefix}/clusters/{cid}"
    )
    assert len(shown["cluster"]["instances"]) == 2
    _check(
        app,
        project.token,
        "GET",
        f"{base}/clusters/{{cluster_id}}/instances/{{instance_id}}",
        f"{prefix}/clusters/{cid}/instances/{world['members'][1]}",
    )
    prefix = f"/v1.0/{admin['project_id']}"
    _check(app, admin["token"], "GET", f"{base}/mgmt/clusters", f"{prefix}/mgmt/clusters")
    _check(
        app,
        admin["token"],
        "GET",
        f"{base}/mgmt/clusters/{{cluster_id}}",
        f"{prefix}/mgmt/clusters/{cid}",
    )


def test_backup_replies_match_their_models(app: FastAPI, world: dict[str, Any]) -> None:
    project = world["project"]
    base, prefix = "/v1.0/{project_id}", f"/v1.0/{project.project_id}"
    listed = _check(app, project.token, "GET", f"{base}/backups", f"{prefix}/backups?limit=2")
    assert listed["links"]
    for bid in world["backups"]:
        _check(
            app, project.token, "GET", f"{base}/backups/{{backup_id}}", f"{prefix}/backups/{bid}"
        )
    source = world["instances"][0]
    mine = _check(
        app,
        project.token,
        "GET",
        f"{base}/instances/{{instance_id}}/backups",
        f"{prefix}/instances/{source}/backups",
    )
    assert len(mine["backups"]) == 3
    _check(app, project.token, "GET", f"{base}/backup_schedules", f"{prefix}/backup_schedules")
    _check(
        app,
        project.token,
        "GET",
        f"{base}/backup_schedules/{{schedule_id}}",
        f"{prefix}/backup_schedules/{world['schedule']}",
    )


def test_configuration_replies_match_their_models(app: FastAPI, world: dict[str, Any]) -> None:
    project = world["project"]
    base, prefix = "/v1.0/{project_id}", f"/v1.0/{project.project_id}"
    body = {
        "configuration": {
            "name": "busy",
            "values": {"max_connections": 200},
            "datastore": {"type": "postgresql", "version": "15"},
        }
    }
    created = _check(
        app, project.token, "POST", f"{base}/configurations", f"{prefix}/configurations", json=body
    )
    cfg = created["configuration"]["id"]
    _check(app, project.token, "GET", f"{base}/configurations", f"{prefix}/configurations")
    _check(
        app,
        project.token,
        "GET",
        f"{base}/configurations/{{config_id}}",
        f"{prefix}/configurations/{cfg}",
    )
    _check(
        app,
        project.token,
        "GET",
        f"{base}/configurations/{{config_id}}/instances",
        f"{prefix}/configurations/{cfg}/instances",
    )
    _check(
        app,
        project.token,
        "GET",
        f"{base}/instances/{{instance_id}}/configuration",
        f"{prefix}/instances/{world['instances'][0]}/configuration",
    )


def test_admin_replies_match_their_models(app: FastAPI, world: dict[str, Any]) -> None:
    admin = world["admin"]
    base, prefix = "/v1.0/{project_id}", f"/v1.0/{admin['project_id']}"
    for path in ("hosts", "projects", "users", "datastore-versions", "events"):
        _check(app, admin["token"], "GET", f"{base}/mgmt/{path}", f"{prefix}/mgmt/{path}")
    target = world["project"].project_id
    _check(
        app,
        admin["token"],
        "GET",
        f"{base}/mgmt/quotas/{{target}}",
        f"{prefix}/mgmt/quotas/{target}",
    )
    _check(app, admin["token"], "GET", f"{base}/events", f"{prefix}/events")
