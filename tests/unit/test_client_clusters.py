"""coffer.client's cluster methods, and the CLI's member lookup, against
httpx.MockTransport standing in for the server (the e2e test drives a real one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from coffer.cli.clusters import resolve_members
from coffer.client import (
    ClusterMemberSpec,
    CofferAmbiguousNameError,
    CofferAPIError,
    CofferClient,
    CofferClientError,
    CofferClusterFailedError,
    CofferWaitTimeoutError,
    WaitUntil,
)
from tests.unit.test_client import ENDPOINT, FakeServer, fault


def member(iid: str, status: str = "ACTIVE", **extra: Any) -> dict[str, Any]:
    return {"id": iid, "name": f"rc-{iid}", "type": "master", "status": status, **extra}


def cluster(task: str = "NONE", *members: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "c-1", "name": "rc", "task": {"name": task}, "instances": list(members), **extra}


def reply(view: dict[str, Any], status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"cluster": view})


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def client(server: FakeServer) -> Iterator[CofferClient]:
    with CofferClient(ENDPOINT, "tok", transport=httpx.MockTransport(server)) as c:
        yield c


def test_create_sends_trove_body(server: FakeServer, client: CofferClient) -> None:
    server.on("POST", "/clusters", reply(cluster("BUILDING")))
    members = [ClusterMemberSpec("tiny", 1)] * 3 + [ClusterMemberSpec("tiny", 1, "replica")]
    assert client.create_cluster("rc", "redis", "7.0", members)["task"]["name"] == "BUILDING"
    plain = {"flavorRef": "tiny", "volume": {"size": 1}}
    assert server.body() == {
        "cluster": {
            "name": "rc",
            "datastore": {"type": "redis", "version": "7.0"},
            "instances": [plain, plain, plain, {**plain, "type": "replica"}],
        }
    }


def test_actions_send_one_key_and_return_the_view(server: FakeServer, client: CofferClient) -> None:
    server.on("POST", "/clusters/c-1", reply(cluster("GROWING_CLUSTER"), 202))
    server.on("DELETE", "/clusters/c-1", httpx.Response(202))
    assert client.grow_cluster("c-1", [("tiny", 1, None)])["task"]["name"] == "GROWING_CLUSTER"
    client.shrink_cluster("c-1", ["i-2", "i-3"])
    client.restart_cluster("c-1")
    client.delete_cluster("c-1")
    bodies = [server.body(i) for i in range(3)]
    assert bodies == [
        {"grow": [{"flavorRef": "tiny", "volume": {"size": 1}}]},
        {"shrink": [{"id": "i-2"}, {"id": "i-3"}]},
        {"restart": {}},
    ]
    assert server.paths()[-1] == "DELETE /v1.0/p1/clusters/c-1"


def test_find_cluster_by_id_name_none_and_several(server: FakeServer, client: CofferClient) -> None:
    listed = {"clusters": [cluster(), {**cluster(), "id": "c-2", "name": "other"}]}
    server.on("GET", "/clusters", httpx.Response(200, json=listed))
    server.on("GET", "/clusters/c-1", reply(cluster()))
    assert client.find_cluster("rc")["id"] == "c-1"
    with pytest.raises(CofferAPIError, match="no cluster has the id or name 'nope'") as err:
        client.find_cluster("nope")
    assert err.value.not_found
    twins = {"clusters": [cluster(), {**cluster(), "id": "c-3"}]}
    server.on("GET", "/clusters", httpx.Response(200, json=twins))
    with pytest.raises(CofferAmbiguousNameError, match="2 clusters are named 'rc'"):
        client.find_cluster("rc")


def test_wait_ready_needs_idle_task_and_every_member_active(
    server: FakeServer, client: CofferClient
) -> None:
    server.on(
        "GET",
        "/clusters/c-1",
        reply(cluster("BUILDING", member("i-1"), member("i-2", "BUILD"))),
        reply(cluster("BUILDING", member("i-1"), member("i-2"))),  # task still running
        reply(cluster("NONE", member("i-1"), member("i-2"))),
    )
    seen: list[Any] = []
    done = client.wait_for_cluster("c-1", interval=0, on_progress=lambda v, _: seen.append(v))
    assert done["task"]["name"] == "NONE" and len(seen) == 3


def test_wait_fails_on_a_cluster_fault(server: FakeServer, client: CofferClient) -> None:
    failed = cluster("NONE", member("i-1"), fault={"message": "cluster grow failed: boom"})
    server.on("GET", "/clusters/c-1", reply(failed))
    with pytest.raises(CofferClusterFailedError, match=r"rc \(c-1\) failed: cluster grow") as err:
        client.wait_for_cluster("c-1", interval=0)
    assert err.value.cluster_id == "c-1" and err.value.fault is not None


def test_wait_fails_on_a_member_error_with_its_own_fault(
    server: FakeServer, client: CofferClient
) -> None:
    server.on("GET", "/clusters/c-1", reply(cluster("BUILDING", member("i-1", "ERROR"))))
    member_view = {"instance": {"id": "i-1", "fault": {"message": "engine did not start"}}}
    server.on("GET", "/clusters/c-1/instances/i-1", httpx.Response(200, json=member_view))
    with pytest.raises(CofferClusterFailedError, match=r"i-1 .* ERROR: engine did not") as err:
        client.wait_for_cluster("c-1", interval=0)
    assert err.value.instance_id == "i-1"


def test_wait_deleted_ends_on_404_and_fails_on_a_failed_delete(
    server: FakeServer, client: CofferClient
) -> None:
    server.on(
        "GET",
        "/clusters/c-1",
        reply(cluster("DELETING", member("i-1", "SHUTDOWN"))),
        fault(404, "itemNotFound", "gone"),
    )
    assert client.wait_for_cluster("c-1", until=WaitUntil.DELETED, interval=0) is None
    broken = cluster("NONE", member("i-1", "ERROR"), fault={"message": "cluster delete failed"})
    server.on("GET", "/clusters/c-1", reply(broken))
    with pytest.raises(CofferClusterFailedError, match="delete failed"):
        client.wait_for_cluster("c-1", until=WaitUntil.DELETED, interval=0)


def test_wait_timeout_describes_the_last_view(server: FakeServer, client: CofferClient) -> None:
    view = cluster("GROWING_CLUSTER", member("i-1"), member("i-2", "BUILD"))
    server.on("GET", "/clusters/c-1", reply(view))
    with pytest.raises(CofferWaitTimeoutError) as err:
        client.wait_for_cluster("c-1", timeout=0, interval=0)
    assert "task GROWING_CLUSTER, members: 1 ACTIVE, 1 BUILD" in str(err.value)
    assert err.value.cluster == view


def test_cli_resolves_members_by_id_or_name() -> None:
    view = cluster("NONE", member("i-1"), member("i-2"), {**member("i-3"), "name": "rc-i-2"})
    assert resolve_members(view, ["i-1", "rc-i-1"]) == ["i-1", "i-1"]
    with pytest.raises(CofferAmbiguousNameError, match="2 members are named 'rc-i-2'"):
        resolve_members(view, ["rc-i-2"])
    with pytest.raises(CofferClientError, match="'x' is not a member of cluster rc"):
        resolve_members(view, ["x"])
