"""Bad requests get Trove's envelope with a useful message, and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.api import create_body, fault, wait_gone, wait_instance
from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration


def count_instances(c: httpx.Client) -> int:
    return len(c.get("/instances").json()["instances"])


@pytest.fixture(scope="module")
def ready(admin: Credentials) -> Iterator[dict[str, Any]]:
    with admin.client() as c:
        inst = c.post("/instances", json=create_body("bad-input-target")).json()["instance"]
        yield wait_instance(c, inst["id"])
        c.delete(f"/instances/{inst['id']}")
        wait_gone(c, inst["id"])


def over(**changes: Any) -> dict[str, Any]:
    body = create_body("bad")
    body["instance"].update(changes)
    return body


BAD_CREATES = [
    ("unknown flavor", over(flavorRef="no-such-flavor"), 400, "Flavor"),
    ("unknown datastore", over(datastore={"type": "oracle"}), 400, "oracle"),
    ("unknown version", over(datastore={"type": "postgresql", "version": "9.1"}), 400, "9.1"),
    ("empty name", over(name=""), 400, "name"),
    ("overlong name", over(name="x" * 256), 400, "name"),
    ("name without letters", over(name="---"), 400, "name"),
    ("zero volume", over(volume={"size": 0}), 400, "size"),
    ("negative volume", over(volume={"size": -3}), 400, "size"),
    ("text volume", over(volume={"size": "big"}), 400, "size"),
    ("float volume", over(volume={"size": 1.5}), 400, "size"),
    ("bool volume", over(volume={"size": True}), 400, "size"),
    ("huge volume", over(volume={"size": 100000}), 400, "size"),
    ("missing volume", over(volume=None), 400, "volume"),
    ("missing flavor", over(flavorRef=None), 400, "flavorRef"),
    ("unknown field", over(colour="blue"), 400, "colour"),
    ("quote in db name", over(databases=[{"name": 'x"; DROP TABLE t; --'}], users=[]), 400, "x"),
    (
        "semicolon in user",
        over(users=[{"name": "a;b", "password": "p", "databases": []}]),
        400,
        "a;b",
    ),
    (
        "reserved user",
        over(users=[{"name": "postgres", "password": "p", "databases": []}]),
        400,
        "postgres",
    ),
    ("reserved db", over(databases=[{"name": "template1"}], users=[]), 400, "template1"),
    ("pg_ prefix", over(databases=[{"name": "pg_evil"}], users=[]), 400, "pg_evil"),
    ("duplicate db", over(databases=[{"name": "a"}, {"name": "a"}], users=[]), 400, "twice"),
    (
        "duplicate user",
        over(
            users=[
                {"name": "u", "password": "p1", "databases": [{"name": "shop"}]},
                {"name": "u", "password": "p2", "databases": [{"name": "shop"}]},
            ]
        ),
        400,
        "twice",
    ),
    (
        "grant to a db not created",
        over(users=[{"name": "u", "password": "p", "databases": [{"name": "elsewhere"}]}]),
        400,
        "elsewhere",
    ),
    (
        "empty password",
        over(users=[{"name": "u", "password": "", "databases": []}]),
        400,
        "password",
    ),
]


@pytest.mark.parametrize(
    ("what", "body", "status", "mentions"), BAD_CREATES, ids=[b[0] for b in BAD_CREATES]
)
def test_bad_create_is_refused_and_writes_nothing(
    admin: Credentials, what: str, body: dict[str, Any], status: int, mentions: str
) -> None:
    body["instance"] = {k: v for k, v in body["instance"].items() if v is not None}
    with admin.client() as c:
        before = count_instances(c)
        r = c.post("/instances", json=body)
        assert r.status_code == status, r.text
        _, _, message = fault(r)
        assert mentions.lower() in message.lower(), message
        assert count_instances(c) == before


def test_unparsable_and_wrongly_typed_bodies(admin: Credentials) -> None:
    with admin.client() as c:
        before = count_instances(c)
        r = c.post("/instances", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and fault(r)[0] == "badRequest"
        r = c.post("/instances", json=["a", "list"])
        assert r.status_code == 400 and fault(r)[0] == "badRequest"
        r = c.post("/instances", json={"instance": "text"})
        assert r.status_code == 400
        assert count_instances(c) == before


def test_auth_errors(server: CofferServer, admin: Credentials) -> None:
    with httpx.Client(base_url=admin.endpoint, timeout=30) as anon:
        r = anon.get("/instances")
        assert r.status_code == 401 and fault(r)[0] == "unauthorized"
        r = anon.get("/instances", headers={"X-Auth-Token": "not-a-token"})
        assert r.status_code == 401 and fault(r)[0] == "unauthorized"
    other = server.new_project("bad-input-other")
    with httpx.Client(
        base_url=admin.endpoint, headers={"X-Auth-Token": other.token}, timeout=30
    ) as c:
        r = c.get("/instances")
        assert r.status_code == 403 and fault(r)[0] == "forbidden"
        assert other.project_id in fault(r)[2]


def test_unknown_ids_are_404(admin: Credentials) -> None:
    with admin.client() as c:
        for path in (
            "/instances/nope",
            "/flavors/nope",
            "/datastores/nope",
            "/datastores/postgresql/versions/0.1",
        ):
            r = c.get(path)
            assert r.status_code == 404, (path, r.text)
            assert fault(r)[0] == "itemNotFound"
        assert c.delete("/instances/nope").status_code == 404
        assert c.post("/instances/nope/action", json={"restart": {}}).status_code == 404
        assert c.get("/no/such/route").status_code == 404


def test_bad_actions(admin: Credentials, ready: dict[str, Any]) -> None:
    iid = ready["id"]
    size = ready["volume"]["size"]
    flavor = ready["flavor"]["id"]
    with admin.client() as c:
        cases = [
            ({"resize": {"volume": {"size": size}}}, 400, "larger"),
            ({"resize": {"volume": {"size": 0}}}, 400, "at least 1"),
            ({"resize": {"flavorRef": flavor}}, 400, "different"),
            ({"resize": {"flavorRef": "no-such"}}, 400, "Flavor"),
            ({"resize": {}}, 400, "exactly one"),
            ({"restart": {}, "resize": {"flavorRef": "medium"}}, 400, "exactly one"),
            ({}, 400, "exactly one"),
            ({"explode": {}}, 400, "explode"),
            ({"reset_status": {}}, 202, ""),
        ]
        for body, status, mentions in cases[:-1]:
            r = c.post(f"/instances/{iid}/action", json=body)
            assert r.status_code == status, (body, r.text)
            assert mentions.lower() in fault(r)[2].lower(), (body, r.text)
        inst = c.get(f"/instances/{iid}").json()["instance"]
        assert (inst["status"], inst["volume"]["size"], inst["flavor"]["id"]) == (
            "ACTIVE",
            size,
            flavor,
        )
        r = c.put(f"/instances/{iid}", json={"instance": {"name": ""}})
        assert r.status_code == 400
        r = c.put(
            f"/instances/{iid}", json={"instance": {"replica_of": None, "configuration": "x"}}
        )
        assert r.status_code == 400 and "one attribute" in fault(r)[2]
        assert c.get(f"/instances/{iid}").json()["instance"]["name"] == "bad-input-target"


def test_bad_users_and_databases(admin: Credentials, ready: dict[str, Any]) -> None:
    iid = ready["id"]
    with admin.client() as c:
        cases = [
            ("/databases", {"databases": [{"name": "shop"}]}, 400, "exists"),
            ("/databases", {"databases": [{"name": 'a"b'}]}, 400, 'a"b'),
            ("/databases", {"databases": []}, 400, "databases"),
            (
                "/users",
                {"users": [{"name": "app", "password": "x", "databases": []}]},
                400,
                "exists",
            ),
            ("/users", {"users": [{"name": "x'; DROP ROLE app; --", "password": "p"}]}, 400, "x'"),
            ("/users", {"users": [{"name": "root", "password": "p"}]}, 400, "root"),
            ("/users", {"users": [{"name": "nopw"}]}, 400, "password"),
        ]
        for path, body, status, mentions in cases:
            r = c.post(f"/instances/{iid}{path}", json=body)
            assert r.status_code == status, (path, body, r.text)
            assert mentions.lower() in fault(r)[2].lower(), (body, r.text)
        assert {d["name"] for d in c.get(f"/instances/{iid}/databases").json()["databases"]} == {
            "shop"
        }
        assert {u["name"] for u in c.get(f"/instances/{iid}/users").json()["users"]} == {"app"}
        assert c.get(f"/instances/{iid}/users/ghost").status_code == 404
        assert c.delete(f"/instances/{iid}/users/ghost").status_code == 404
        assert c.delete(f"/instances/{iid}/databases/ghost").status_code == 404
        r = c.put(f"/instances/{iid}/users/app", json={"user": {}})
        assert r.status_code == 400


def test_action_during_build_is_422(admin: Credentials) -> None:
    with admin.client() as c:
        iid = c.post("/instances", json=create_body("still-building")).json()["instance"]["id"]
        try:
            r = c.post(f"/instances/{iid}/action", json={"restart": {}})
            assert r.status_code == 422, r.text
            assert "not currently available" in fault(r)[2]
            r = c.delete(f"/instances/{iid}")
            assert r.status_code == 422, r.text
            r = c.get(f"/instances/{iid}/users")
            assert r.status_code == 422, r.text
        finally:
            wait_instance(c, iid)
            assert c.delete(f"/instances/{iid}").status_code == 202
            wait_gone(c, iid)


def test_quota_exceeded_is_413_and_writes_nothing(server: CofferServer, admin: Credentials) -> None:
    team = server.new_project("quota-team")
    with admin.client() as c:
        r = c.put(f"/mgmt/quotas/{team.project_id}", json={"quotas": {"instances": 0}})
        assert r.status_code == 200 and r.json() == {"quotas": {"instances": 0}}
        assert (
            c.put(f"/mgmt/quotas/{team.project_id}", json={"quotas": {"instances": -2}}).status_code
            == 400
        )
        assert (
            c.put(f"/mgmt/quotas/{team.project_id}", json={"quotas": {"gpus": 1}}).status_code
            == 400
        )
    with team.client() as t:
        r = t.post("/instances", json=create_body("too-many"))
        assert r.status_code == 413, r.text
        assert fault(r)[0] == "overLimit" and "instances" in fault(r)[2]
        assert count_instances(t) == 0
        assert (
            t.put(f"/mgmt/quotas/{team.project_id}", json={"quotas": {"instances": 5}}).status_code
            == 403
        )
    with admin.client() as c:
        c.put(f"/mgmt/quotas/{team.project_id}", json={"quotas": {"instances": 5, "volumes": 1}})
    with team.client() as t:
        r = t.post("/instances", json=create_body("too-big", volume={"size": 2}))
        assert r.status_code == 413 and "volumes" in fault(r)[2]
        quotas = {
            q["resource"]: q for q in t.get(f"/mgmt/quotas/{team.project_id}").json()["quotas"]
        }
        assert quotas["instances"]["in_use"] == 0 and quotas["volumes"]["limit"] == 1
