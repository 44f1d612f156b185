"""``/openapi.json`` as built from the routes, and the request rules its schemathesis run
(tests/e2e/test_openapi.py) brought in: on a real app and database, through ASGI."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import select

from coffer.api import errors, keystone_errors
from coffer.api.app import create_app
from coffer.api.openapi import TOKEN_SCHEME
from coffer.contracts.api_v1 import MAX_INT
from coffer.db.models import Event
from coffer.errors import BadRequest
from coffer.server import build_runtime
from coffer.services import bootstrap, events, quotas
from coffer.services.runtime import Runtime
from coffer.settings import ServerSettings

#: operations anyone may call: version documents, health, metrics, password login
PUBLIC = {
    ("get", "/"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/v3"),
    ("post", "/v3/auth/tokens"),
}


@pytest.fixture(scope="module")
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    data_dir = Path(tempfile.mkdtemp(prefix="cf-openapi-"))
    request.addfinalizer(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    rt = build_runtime(ServerSettings(data_dir=data_dir))
    bootstrap.seed(rt)
    yield rt
    rt.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime)


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def _call(app: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # raises what the app raises
        async with httpx.AsyncClient(transport=transport, base_url="http://coffer") as client:
            return await client.request(method, path, **kw)

    return asyncio.run(run())


# -- the document --------------------------------------------------------------------


def test_every_route_but_the_agents_is_documented(app: FastAPI, document: dict[str, Any]) -> None:
    """The agent protocol (/agent/v1) is internal: host credentials, not tokens."""
    documented = {(m, p) for m, p, _ in _operations(document)}
    seen = 0
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        for method in route.methods:
            seen += 1
            entry = (method.lower(), context.path)
            if context.path.startswith("/agent/"):
                assert entry not in documented
            elif route.include_in_schema:
                assert entry in documented, entry
    assert seen > len(documented) >= 90
    assert not any(p.startswith("/agent/") for _, p in documented)


def test_every_operation_declares_its_replies(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    for method, path, operation in _operations(document):
        codes = set(operation["responses"])
        assert "default" not in codes, f"{method} {path}: declare its error codes"
        assert "422" not in codes or path.startswith("/v1.0/"), (method, path)
        assert any(c.startswith(("2", "3")) for c in codes), (method, path)
        for code, reply in operation["responses"].items():
            if not code.startswith(("4", "5")):
                continue
            for content in reply.get("content", {}).values():
                name = content["schema"]["$ref"].rsplit("/", 1)[1]
                shape = "KeystoneError" if path.startswith("/v3") else "TroveFault"
                assert name == f"{shape}{code}", (method, path, code)
                assert name in schemas


def test_authenticated_operations_name_the_token_scheme(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"][TOKEN_SCHEME]
    assert scheme == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Auth-Token",
        "description": scheme["description"],
    }
    for method, path, operation in _operations(document):
        params = {p["name"].lower() for p in operation.get("parameters", [])}
        assert "x-auth-token" not in params, (method, path)
        if (method, path) in PUBLIC:
            assert "security" not in operation, (method, path)
        else:
            assert operation["security"] == [{TOKEN_SCHEME: []}], (method, path)
            assert "401" in operation["responses"], (method, path)


def test_error_schemas_describe_the_envelopes_sent(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for code in (400, 404, 413, 501, 503):
        body = json.loads(errors.envelope(code, "why").body)
        schema = schemas[f"TroveFault{code}"]
        assert set(body) == set(schema["required"]) == set(schema["properties"])
        (inner,) = body.values()
        assert inner == {"code": code, "message": "why"}
    body = json.loads(keystone_errors.keystone_error(401, "who").body)
    properties = schemas["KeystoneError401"]["properties"]["error"]["properties"]
    assert body["error"]["title"] == properties["title"]["const"]
    assert body["error"]["code"] == properties["code"]["const"] == 401


def test_request_bodies_and_replies_are_described(document: dict[str, Any]) -> None:
    create = document["paths"]["/v1.0/{project_id}/instances"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/InstanceCreateBody"
    )
    reply = create["responses"]["200"]["content"]["application/json"]["schema"]
    assert reply["$ref"].endswith("/InstanceReply")
    delete = document["paths"]["/v1.0/{project_id}/instances/{instance_id}"]["delete"]
    assert "202" in delete["responses"] and "200" not in delete["responses"]
    root = document["paths"]["/v1.0/{project_id}/instances/{instance_id}/root"]["post"]
    assert root["requestBody"]["required"] is False
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]


# -- rules the schemathesis run brought in -------------------------------------------


def test_nul_characters_are_refused_before_anything_is_read(app: FastAPI) -> None:
    """PostgreSQL cannot store NUL; it answered 500. Now 400 on every metadata database."""
    for path, kw in [
        ("/v1.0/p/flavors/a%00b", {}),
        ("/v1.0/p/instances?marker=a%00", {}),
        ("/v1.0/p/instances", {"content": b'{"instance": {"name": "a\\u0000"}}'}),
    ]:
        r = _call(app, "POST" if "content" in kw else "GET", path, **kw)
        assert r.status_code == 400, r.text
        assert "NUL" in r.json()["badRequest"]["message"]
    # an escaped backslash before "u0000" is text, not NUL: the request goes on (to 401)
    r = _call(app, "POST", "/v1.0/p/instances", content=b'{"instance": {"name": "a\\\\u0000"}}')
    assert r.status_code == 401, r.text
    r = _call(app, "GET", "/v3/projects?name=a%00")
    assert r.status_code == 400 and "NUL" in r.json()["error"]["message"]


def test_a_keystone_body_that_cannot_be_parsed_gets_keystone_s_shape(app: FastAPI) -> None:
    r = _call(
        app,
        "POST",
        "/v3/auth/tokens",
        content=b'{"auth": "\xff"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert set(r.json()) == {"error"}
    assert r.json()["error"]["title"] == "Bad Request"


def test_an_unexpected_error_is_answered_without_raising_out_of_the_app() -> None:
    """Raising after the 500 made uvicorn close the connection under the client."""
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    r = _call(app, "GET", "/boom")
    assert r.status_code == 500
    assert "error id" in r.json()["instanceFault"]["message"]


def test_integers_beyond_a_column_are_refused(runtime: Runtime, app: FastAPI) -> None:
    token = json.loads(bootstrap.ensure_admin_credentials(runtime).read_text())
    headers = {"X-Auth-Token": token["token"]}
    prefix = f"/v1.0/{token['project_id']}"
    r = _call(app, "GET", f"{prefix}/events?marker={MAX_INT + 1}", headers=headers)
    assert r.status_code == 400, r.text
    body = {"flavor": {"name": "huge", "ram": MAX_INT + 1, "vcpus": 1}}
    r = _call(app, "POST", f"{prefix}/flavors", json=body, headers=headers)
    assert r.status_code == 400, r.text
    assert _call(app, "GET", f"{prefix}/flavors/huge", headers=headers).status_code == 404
    with pytest.raises(BadRequest, match="<= 2147483647"):
        quotas.update_limits(runtime, token["project_id"], {"instances": MAX_INT + 1})


def test_an_event_keeps_at_most_a_column_of_its_resource_id(runtime: Runtime) -> None:
    """PostgreSQL refused the insert, and the audit entry was lost."""
    long_id = "x" * 100
    events.record_request(
        runtime,
        project_id="p" * 40,
        actor="project test",
        method="DELETE",
        route="/v1.0/{project_id}/instances/{instance_id}",
        path=f"/v1.0/p/instances/{long_id}",
        path_params={"project_id": "p", "instance_id": long_id},
        status=404,
        created_id=None,
    )
    with runtime.sessions() as s:
        row = s.scalars(select(Event).where(Event.resource_id == long_id[:64])).one()
    assert row.project_id == "p" * 32
    assert row.detail.endswith(long_id)
