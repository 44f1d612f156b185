"""Datastore versions are data: admins register them; a version the host lacks fails visibly."""

from __future__ import annotations

import uuid

import pytest

from tests.support.api import create_body, fault, wait_gone, wait_instance
from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration


def register(c, **version) -> int:  # type: ignore[no-untyped-def]
    return c.post("/mgmt/datastore-versions", json={"version": version}).status_code


def version_id(c, datastore: str, name: str) -> str:  # type: ignore[no-untyped-def]
    return c.get(f"/datastores/{datastore}/versions/{name}").json()["version"]["id"]


def test_register_use_and_remove_a_version(server: CofferServer, admin: Credentials) -> None:
    name = f"15-{uuid.uuid4().hex[:6]}"
    with admin.client() as c:
        assert (
            register(
                c,
                name=name,
                datastore_name="postgresql",
                datastore_manager="postgresql",
                version="15",
                active=True,
            )
            == 202
        )
        assert (
            register(
                c,
                name=name,
                datastore_name="postgresql",
                datastore_manager="postgresql",
                version="15",
            )
            == 400
        )
        r = c.post(
            "/mgmt/datastore-versions",
            json={
                "version": {"name": "x", "datastore_name": "mongo", "datastore_manager": "mongodb"}
            },
        )
        assert r.status_code == 400 and "mongodb" in fault(r)[2]
        r = c.post(
            "/mgmt/datastore-versions",
            json={
                "version": {
                    "name": "9",
                    "datastore_name": "postgresql",
                    "datastore_manager": "postgresql",
                }
            },
        )
        assert r.status_code == 400 and "9" in fault(r)[2]
        vid = version_id(c, "postgresql", name)
        assert (
            c.get(f"/mgmt/datastore-versions/{vid}").json()["version"]["datastore_manager"]
            == "postgresql"
        )

        body = create_body("custom-version", datastore={"type": "postgresql", "version": name})
        iid = c.post("/instances", json=body).json()["instance"]["id"]
        inst = wait_instance(c, iid)
        assert inst["datastore"]["version"] == name and inst["datastore"]["version_number"] == "15"

        r = c.delete(f"/mgmt/datastore-versions/{vid}")
        assert r.status_code == 400 and "used by" in fault(r)[2]
        assert c.patch(f"/mgmt/datastore-versions/{vid}", json={"active": False}).status_code == 202
        r = c.post(
            "/instances",
            json=create_body("inactive", datastore={"type": "postgresql", "version": name}),
        )
        assert r.status_code == 400 and "not active" in fault(r)[2]
        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)
        assert c.delete(f"/mgmt/datastore-versions/{vid}").status_code == 202
        assert c.get(f"/datastores/postgresql/versions/{name}").status_code == 404


def test_version_not_installed_on_the_host_fails_with_a_fault(
    server: CofferServer, admin: Credentials
) -> None:
    name = f"16-{uuid.uuid4().hex[:6]}"
    with admin.client() as c:
        assert (
            register(
                c,
                name=name,
                datastore_name="postgresql",
                datastore_manager="postgresql",
                version="16",
            )
            == 202
        )
        iid = c.post(
            "/instances",
            json=create_body("missing-engine", datastore={"type": "postgresql", "version": name}),
        ).json()["instance"]["id"]
        inst = wait_instance(c, iid, status="ERROR", operating=None, timeout=60)
        assert "not installed" in inst["fault"]["message"] and "16" in inst["fault"]["message"]
        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)
        c.delete(f"/mgmt/datastore-versions/{version_id(c, 'postgresql', name)}")


def test_only_admins_manage_versions(server: CofferServer) -> None:
    user = server.new_project(f"dsv-{uuid.uuid4().hex[:6]}")
    with user.client() as c:
        assert (
            register(c, name="x", datastore_name="postgresql", datastore_manager="postgresql")
            == 403
        )
        assert c.get("/mgmt/datastore-versions").status_code == 403
