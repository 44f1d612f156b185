"""A project can never see or touch another project's instance."""

from __future__ import annotations

import pytest

from tests.support.api import create_body, wait_gone, wait_instance
from tests.support.processes import CofferServer

pytestmark = pytest.mark.integration

ROUTES = [
    ("GET", "/instances/{id}", None),
    ("PUT", "/instances/{id}", {"instance": {"name": "stolen"}}),
    ("PATCH", "/instances/{id}", {"instance": {"name": "stolen"}}),
    ("DELETE", "/instances/{id}", None),
    ("POST", "/instances/{id}/action", {"restart": {}}),
    ("POST", "/instances/{id}/action", {"resize": {"volume": {"size": 5}}}),
    ("GET", "/instances/{id}/databases", None),
    ("POST", "/instances/{id}/databases", {"databases": [{"name": "x"}]}),
    ("DELETE", "/instances/{id}/databases/shop", None),
    ("GET", "/instances/{id}/users", None),
    ("POST", "/instances/{id}/users", {"users": [{"name": "x", "password": "p"}]}),
    ("PUT", "/instances/{id}/users", {"users": [{"name": "app", "password": "p"}]}),
    ("GET", "/instances/{id}/users/app", None),
    ("PUT", "/instances/{id}/users/app", {"user": {"password": "p"}}),
    ("DELETE", "/instances/{id}/users/app", None),
    ("GET", "/instances/{id}/users/app/databases", None),
    ("PUT", "/instances/{id}/users/app/databases", {"databases": [{"name": "shop"}]}),
    ("DELETE", "/instances/{id}/users/app/databases/shop", None),
    ("GET", "/instances/{id}/root", None),
    ("POST", "/instances/{id}/root", None),
    ("DELETE", "/instances/{id}/root", None),
]


def test_other_project_gets_404_or_403_everywhere(server: CofferServer) -> None:
    owner = server.new_project("tenant-owner")
    intruder = server.new_project("tenant-intruder")
    with owner.client() as o:
        iid = o.post("/instances", json=create_body("private")).json()["instance"]["id"]
        wait_instance(o, iid)
        with intruder.client() as i:
            assert iid not in {x["id"] for x in i.get("/instances").json()["instances"]}
            for method, path, body in ROUTES:
                r = i.request(method, path.format(id=iid), json=body)
                assert r.status_code == 404, (method, path, r.status_code, r.text)
            # the owner's project id in the URL with the intruder's token: 403
            with intruder.client() as raw:
                raw.base_url = owner.endpoint  # type: ignore[misc]
                for method, path, body in ROUTES:
                    r = raw.request(method, path.format(id=iid), json=body)
                    assert r.status_code == 403, (method, path, r.status_code, r.text)
                assert raw.get("/instances").status_code == 403
            assert i.get("/mgmt/instances").status_code == 403
            assert i.post("/mgmt/projects", json={"project": {"name": "x"}}).status_code == 403
        inst = o.get(f"/instances/{iid}").json()["instance"]
        assert inst["name"] == "private" and inst["status"] == "ACTIVE"
        assert {u["name"] for u in o.get(f"/instances/{iid}/users").json()["users"]} == {"app"}
        assert o.delete(f"/instances/{iid}").status_code == 202
        wait_gone(o, iid)
