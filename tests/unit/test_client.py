"""coffer.client against httpx.MockTransport standing in for the server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from coffer.client import (
    CofferAmbiguousNameError,
    CofferAPIError,
    CofferClient,
    CofferConnectionError,
    CofferInstanceFailedError,
    CofferResponseError,
    CofferWaitTimeoutError,
    UserSpec,
    WaitUntil,
    user_path_segment,
)

ENDPOINT = "http://coffer.test:8779/v1.0/p1"
Reply = httpx.Response | Callable[[httpx.Request], httpx.Response]


class FakeServer:
    """Canned replies by (method, path below the endpoint); records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *replies: Reply) -> None:
        """Answer with ``replies`` in turn; the last one repeats."""
        self.routes[(method, path)] = list(replies)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.raw_path.decode().split("?")[0].removeprefix("/v1.0/p1")
        replies = self.routes.get((request.method, path))
        if not replies:
            return fault(404, "itemNotFound", f"no route {request.method} {path}")
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        return reply(request) if callable(reply) else reply

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.raw_path.decode()}" for r in self.requests]


def fault(status: int, name: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={name: {"code": status, "message": message}})


def instance(status: str = "ACTIVE", operating: str = "HEALTHY", **extra: Any) -> dict[str, Any]:
    return {"id": "i-1", "name": "shop", "status": status, "operating_status": operating, **extra}


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def client(server: FakeServer) -> Iterator[CofferClient]:
    with CofferClient(ENDPOINT, "tok", transport=httpx.MockTransport(server)) as c:
        yield c


def test_every_request_carries_the_token_and_asks_for_json(
    server: FakeServer, client: CofferClient
) -> None:
    server.on("GET", "/flavors", httpx.Response(200, json={"flavors": []}))
    assert client.list_flavors() == []
    request = server.requests[0]
    assert request.headers["X-Auth-Token"] == "tok"
    assert request.headers["Accept"] == "application/json"
    assert str(request.url) == f"{ENDPOINT}/flavors"


def test_create_instance_sends_trove_body(server: FakeServer, client: CofferClient) -> None:
    server.on("POST", "/instances", httpx.Response(200, json={"instance": instance("BUILD", "")}))
    view = client.create_instance(
        "shop",
        flavor="small",
        datastore="postgresql",
        datastore_version="15",
        volume_size=2,
        databases=["shop", "audit"],
        users=[UserSpec("app", "secret", databases=("shop", "audit"))],
    )
    assert view["status"] == "BUILD"
    assert server.body() == {
        "instance": {
            "name": "shop",
            "flavorRef": "small",
            "volume": {"size": 2},
            "datastore": {"type": "postgresql", "version": "15"},
            "databases": [{"name": "shop"}, {"name": "audit"}],
            "users": [
                {
                    "name": "app",
                    "password": "secret",
                    "databases": [{"name": "shop"}, {"name": "audit"}],
                }
            ],
        }
    }


def test_create_instance_leaves_out_what_was_not_asked(
    server: FakeServer, client: CofferClient
) -> None:
    server.on("POST", "/instances", httpx.Response(200, json={"instance": instance("BUILD")}))
    client.create_instance("shop", flavor="small", datastore="redis")
    assert server.body() == {
        "instance": {"name": "shop", "flavorRef": "small", "datastore": {"type": "redis"}}
    }


def test_user_spec_repr_hides_the_password() -> None:
    assert "secret" not in repr(UserSpec("app", "secret"))


@pytest.mark.parametrize(
    ("name", "host", "segment"),
    [
        ("bob", None, "bob"),
        ("bob", "10.0.0.2", "bob%4010.0.0.2"),
        ("bob", "%", "bob%40%25"),
        ("a@b", None, "a%40b%40%25"),
        ("we ird/x", None, "we%20ird%2Fx"),
        ("..", None, "%2E%2E"),
    ],
)
def test_user_path_segment(name: str, host: str | None, segment: str) -> None:
    assert user_path_segment(name, host) == segment


def test_user_operations_use_percent_encoded_name_at_host(
    server: FakeServer, client: CofferClient
) -> None:
    user_path = "/instances/i-1/users/bob%4010.0.0.2"
    server.on("PUT", user_path, httpx.Response(202))
    server.on("GET", user_path, httpx.Response(200, json={"user": {"name": "bob"}}))
    server.on("DELETE", f"{user_path}/databases/shop", httpx.Response(202))
    server.on("PUT", f"{user_path}/databases", httpx.Response(202))
    client.update_user("i-1", "bob", host="10.0.0.2", new_password="pw2", new_host="10.0.0.1")
    assert server.body() == {"user": {"password": "pw2", "host": "10.0.0.1"}}
    assert client.get_user("i-1", "bob", host="10.0.0.2") == {"name": "bob"}
    client.revoke_user_access("i-1", "bob", "shop", host="10.0.0.2")
    client.grant_user_access("i-1", "bob", ["shop", "crm"], host="10.0.0.2")
    assert server.body() == {"databases": [{"name": "shop"}, {"name": "crm"}]}
    assert server.paths() == [
        f"PUT /v1.0/p1{user_path}",
        f"GET /v1.0/p1{user_path}",
        f"DELETE /v1.0/p1{user_path}/databases/shop",
        f"PUT /v1.0/p1{user_path}/databases",
    ]


def test_update_user_needs_a_change(client: CofferClient) -> None:
    with pytest.raises(ValueError):
        client.update_user("i-1", "bob")


def test_create_users_and_databases(server: FakeServer, client: CofferClient) -> None:
    server.on("POST", "/instances/i-1/users", httpx.Response(202))
    server.on("POST", "/instances/i-1/databases", httpx.Response(202))
    client.create_users("i-1", [UserSpec("app", "pw", host="%", databases=("shop",))])
    assert server.body() == {
        "users": [{"name": "app", "password": "pw", "host": "%", "databases": [{"name": "shop"}]}]
    }
    client.create_databases("i-1", ["shop"], character_set="utf8")
    assert server.body() == {"databases": [{"name": "shop", "character_set": "utf8"}]}


def test_instance_actions(server: FakeServer, client: CofferClient) -> None:
    server.on("POST", "/instances/i-1/action", httpx.Response(202))
    server.on("PUT", "/instances/i-1", httpx.Response(202))
    client.restart_instance("i-1")
    client.resize_instance_flavor("i-1", "large")
    client.resize_instance_volume("i-1", 5)
    client.reset_instance_status("i-1")
    client.rename_instance("i-1", "shop2")
    bodies = [json.loads(r.content) for r in server.requests]
    assert bodies == [
        {"restart": {}},
        {"resize": {"flavorRef": "large"}},
        {"resize": {"volume": {"size": 5}}},
        {"reset_status": {}},
        {"instance": {"name": "shop2"}},
    ]


def test_quota_update_sends_only_given_limits(server: FakeServer, client: CofferClient) -> None:
    reply = {"quotas": {"instances": 5, "ram": 4096}}
    server.on("PUT", "/mgmt/quotas/p2", httpx.Response(200, json=reply))
    assert client.update_quotas("p2", instances=5, ram=4096) == reply["quotas"]
    assert server.body() == {"quotas": {"instances": 5, "ram": 4096}}
    with pytest.raises(ValueError):
        client.update_quotas("p2")


def test_quota_show_defaults_to_own_project(server: FakeServer, client: CofferClient) -> None:
    quotas = [{"resource": "instances", "in_use": 1, "reserved": 0, "limit": 10}]
    server.on("GET", "/mgmt/quotas/p1", httpx.Response(200, json={"quotas": quotas}))
    assert client.get_quotas() == quotas


def test_error_envelope_becomes_api_error(server: FakeServer, client: CofferClient) -> None:
    server.on("GET", "/instances/nope", fault(404, "itemNotFound", "Instance nope not found"))
    with pytest.raises(CofferAPIError) as caught:
        client.get_instance("nope")
    assert (caught.value.status, caught.value.fault) == (404, "itemNotFound")
    assert caught.value.message == "Instance nope not found"
    assert str(caught.value) == "Instance nope not found (HTTP 404)"


def test_error_without_envelope_still_reads(server: FakeServer, client: CofferClient) -> None:
    server.on("GET", "/flavors", httpx.Response(502, text="<html>\nBad gateway\n</html>"))
    with pytest.raises(CofferAPIError) as caught:
        client.list_flavors()
    assert caught.value.status == 502
    assert "\n" not in str(caught.value)


def test_framework_validation_error_reads(server: FakeServer, client: CofferClient) -> None:
    detail = [{"loc": ["body", "instance", "name"], "msg": "Field required"}]
    server.on("POST", "/instances", httpx.Response(422, json={"detail": detail}))
    with pytest.raises(CofferAPIError, match=r"body\.instance\.name: Field required"):
        client.create_instance("x", flavor="s", datastore="postgresql")


def test_unreachable_server_names_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    client = CofferClient(ENDPOINT, "t", transport=httpx.MockTransport(refuse))
    with client, pytest.raises(CofferConnectionError) as caught:
        client.list_instances()
    assert f"{ENDPOINT}/instances" in str(caught.value)
    assert caught.value.url == f"{ENDPOINT}/instances"


def test_reply_without_promised_key(server: FakeServer, client: CofferClient) -> None:
    server.on("GET", "/instances/i-1", httpx.Response(200, json={"oops": 1}))
    with pytest.raises(CofferResponseError):
        client.get_instance("i-1")


def test_lists_follow_pagination_markers(server: FakeServer, client: CofferClient) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("marker") == "i-2":
            return httpx.Response(200, json={"instances": [{"id": "i-3"}]})
        next_link = {"rel": "next", "href": "https://elsewhere/v1.0/p1/instances?marker=i-2"}
        return httpx.Response(
            200, json={"instances": [{"id": "i-1"}, {"id": "i-2"}], "links": [next_link]}
        )

    server.on("GET", "/instances", page)
    assert [i["id"] for i in client.list_instances()] == ["i-1", "i-2", "i-3"]
    assert all(r.url.host == "coffer.test" for r in server.requests)


def test_find_instance_by_id_then_by_name(server: FakeServer, client: CofferClient) -> None:
    server.on("GET", "/instances/i-1", httpx.Response(200, json={"instance": instance()}))
    server.on("GET", "/instances", httpx.Response(200, json={"instances": [instance()]}))
    assert client.find_instance("i-1")["id"] == "i-1"
    assert client.find_instance("shop")["id"] == "i-1"
    assert server.paths()[1:] == [
        "GET /v1.0/p1/instances/shop",
        "GET /v1.0/p1/instances",
        "GET /v1.0/p1/instances/i-1",
    ]


def test_find_instance_not_found_and_ambiguous(server: FakeServer, client: CofferClient) -> None:
    twins = [instance(id="i-1"), instance(id="i-2")]
    server.on("GET", "/instances", httpx.Response(200, json={"instances": twins}))
    with pytest.raises(CofferAmbiguousNameError, match="i-1, i-2"):
        client.find_instance("shop")
    with pytest.raises(CofferAPIError) as caught:
        client.find_instance("other")
    assert caught.value.status == 404
    assert "'other'" in caught.value.message


def test_find_instance_passes_other_errors(server: FakeServer, client: CofferClient) -> None:
    server.on("GET", "/instances/x", fault(401, "unauthorized", "bad token"))
    with pytest.raises(CofferAPIError) as caught:
        client.find_instance("x")
    assert caught.value.status == 401


def test_wait_ends_on_active_healthy(server: FakeServer, client: CofferClient) -> None:
    server.on(
        "GET",
        "/instances/i-1",
        httpx.Response(200, json={"instance": instance("BUILD", "")}),
        httpx.Response(200, json={"instance": instance("ACTIVE", "BUILD")}),
        httpx.Response(200, json={"instance": instance("ACTIVE", "HEALTHY")}),
    )
    seen: list[str] = []
    view = client.wait_for_instance(
        "i-1",
        interval=0,
        on_progress=lambda v, _: seen.append(f"{v['status']}/{v['operating_status']}"),
    )
    assert view["operating_status"] == "HEALTHY"
    assert seen == ["BUILD/", "ACTIVE/BUILD", "ACTIVE/HEALTHY"]


def test_wait_raises_with_fault_on_error(server: FakeServer, client: CofferClient) -> None:
    failed = instance("ERROR", "", fault={"message": "initdb failed: disk full", "created": "x"})
    server.on("GET", "/instances/i-1", httpx.Response(200, json={"instance": failed}))
    with pytest.raises(CofferInstanceFailedError, match="initdb failed: disk full") as caught:
        client.wait_for_instance("i-1", interval=0)
    assert caught.value.fault == failed["fault"]


def test_wait_times_out(server: FakeServer, client: CofferClient) -> None:
    server.on("GET", "/instances/i-1", httpx.Response(200, json={"instance": instance("BUILD")}))
    with pytest.raises(CofferWaitTimeoutError, match="status BUILD"):
        client.wait_for_instance("i-1", timeout=0, interval=0)


def test_wait_may_take_restart_required_as_ready(server: FakeServer, client: CofferClient) -> None:
    pending = instance("RESTART_REQUIRED", "RESTART_REQUIRED")
    server.on("GET", "/instances/i-1", httpx.Response(200, json={"instance": pending}))
    with pytest.raises(CofferWaitTimeoutError, match="status RESTART_REQUIRED"):
        client.wait_for_instance("i-1", timeout=0, interval=0)
    view = client.wait_for_instance("i-1", interval=0, restart_required_is_ready=True)
    assert view["status"] == "RESTART_REQUIRED"


def test_configuration_attach_and_detach_bodies(server: FakeServer, client: CofferClient) -> None:
    server.on("PUT", "/instances/i-1", httpx.Response(202))
    client.attach_configuration("i-1", "cfg-1")
    client.detach_configuration("i-1")
    bodies = [json.loads(r.content) for r in server.requests]
    assert bodies == [{"instance": {"configuration": "cfg-1"}}, {"instance": {}}]


def test_wait_for_deletion_ends_on_404(server: FakeServer, client: CofferClient) -> None:
    server.on(
        "GET",
        "/instances/i-1",
        httpx.Response(200, json={"instance": instance("SHUTDOWN", "")}),
        fault(404, "itemNotFound", "gone"),
    )
    assert client.wait_for_instance("i-1", until=WaitUntil.DELETED, interval=0) is None
    assert len(server.requests) == 2


def test_wait_survives_a_server_restart(server: FakeServer) -> None:
    calls = iter([False, True])

    def flaky(request: httpx.Request) -> httpx.Response:
        if not next(calls):
            raise httpx.ConnectError("Connection refused", request=request)
        return server(request)

    server.on("GET", "/instances/i-1", httpx.Response(200, json={"instance": instance()}))
    with CofferClient(ENDPOINT, "t", transport=httpx.MockTransport(flaky)) as client:
        assert client.wait_for_instance("i-1", interval=0)["status"] == "ACTIVE"


def test_root_and_limits(server: FakeServer, client: CofferClient) -> None:
    server.on(
        "POST",
        "/instances/i-1/root",
        httpx.Response(200, json={"user": {"name": "root", "password": "pw"}}),
    )
    server.on("GET", "/instances/i-1/root", httpx.Response(200, json={"rootEnabled": True}))
    server.on("DELETE", "/instances/i-1/root", httpx.Response(204))
    server.on("GET", "/limits", httpx.Response(200, json={"limits": [{"verb": "ABSOLUTE"}]}))
    assert client.enable_root("i-1") == {"name": "root", "password": "pw"}
    assert server.requests[-1].content == b""
    assert client.is_root_enabled("i-1") is True
    client.disable_root("i-1")
    assert client.get_limits() == [{"verb": "ABSOLUTE"}]


def test_projects_tokens_and_flavors(server: FakeServer, client: CofferClient) -> None:
    creds = {"endpoint": "http://h/v1.0/p2", "project_id": "p2", "token": "t2"}
    server.on(
        "POST",
        "/mgmt/projects",
        httpx.Response(200, json={"project": {"id": "p2", "name": "web"}, "credentials": creds}),
    )
    server.on("POST", "/mgmt/tokens", httpx.Response(200, json={"credentials": creds}))
    server.on("POST", "/flavors", httpx.Response(200, json={"flavor": {"id": "tiny"}}))
    assert client.create_project("web") == {
        "project": {"id": "p2", "name": "web"},
        "credentials": creds,
    }
    assert server.body() == {"project": {"name": "web"}}
    assert client.create_token("web") == creds
    assert server.body() == {"token": {"project": "web"}}
    client.create_flavor("tiny", ram=256, vcpus=1, flavor_id="tiny")
    assert server.body() == {"flavor": {"name": "tiny", "ram": 256, "vcpus": 1, "id": "tiny"}}


def test_project_id_is_the_endpoint_tail() -> None:
    with CofferClient(ENDPOINT + "/", "t") as client:
        assert client.endpoint == ENDPOINT
        assert client.project_id == "p1"
