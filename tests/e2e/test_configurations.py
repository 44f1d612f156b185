"""Configuration groups (PostgreSQL): catalogue, validation, attach, live and restart values."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.api import create_body, fault, wait_gone, wait_instance
from tests.support.processes import CofferServer, Credentials, wait_for

pytestmark = pytest.mark.integration


def setting(inst: dict, name: str) -> str:
    with psycopg.connect(
        host="127.0.0.1", port=inst["port"], user="app", password="app-secret-1", dbname="shop"
    ) as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
        assert row is not None
        return str(row[0])


def test_parameter_catalogue(admin: Credentials) -> None:
    with admin.client() as c:
        params = c.get("/datastores/postgresql/versions/15/parameters").json()[
            "configuration-parameters"
        ]
        by_name = {p["name"]: p for p in params}
        assert by_name["max_connections"]["restart_required"] is True
        assert (
            by_name["work_mem"]["type"] == "integer"
            and by_name["work_mem"]["restart_required"] is False
        )
        one = c.get("/datastores/postgresql/versions/15/parameters/work_mem").json()
        assert one["name"] == "work_mem" and "min" in one and "max" in one
        vid = one["datastore_version_id"]
        assert (
            c.get(f"/datastores/versions/{vid}/parameters").json()["configuration-parameters"]
            == params
        )
        assert c.get("/datastores/postgresql/versions/15/parameters/no_such").status_code == 404


@pytest.mark.parametrize(
    ("values", "mentions"),
    [
        ({"no_such_setting": 1}, "no_such_setting"),
        ({"work_mem": "8MB"}, "work_mem"),
        ({"work_mem": True}, "work_mem"),
        ({"max_connections": 1}, "max_connections"),
        ({"max_connections": 10**9}, "max_connections"),
        ({"log_statement": "everything"}, "log_statement"),
        ({"autovacuum": "yes"}, "autovacuum"),
    ],
)
def test_bad_values_are_422_and_create_nothing(
    admin: Credentials, values: dict, mentions: str
) -> None:
    with admin.client() as c:
        before = len(c.get("/configurations").json()["configurations"])
        body = {
            "configuration": {
                "name": "bad",
                "values": values,
                "datastore": {"type": "postgresql", "version": "15"},
            }
        }
        r = c.post("/configurations", json=body)
        assert r.status_code == 422, r.text
        assert mentions in fault(r)[2]
        assert len(c.get("/configurations").json()["configurations"]) == before


def test_group_lifecycle_on_an_instance(server: CofferServer, admin: Credentials) -> None:
    with admin.client() as c:
        body = {
            "configuration": {
                "name": "tuned",
                "description": "bigger sorts",
                "values": {"work_mem": 8192, "max_connections": 150},
                "datastore": {"type": "postgresql", "version": "15"},
            }
        }
        r = c.post("/configurations", json=body)
        assert r.status_code == 200, r.text
        cfg = r.json()["configuration"]
        assert cfg["values"] == {"work_mem": 8192, "max_connections": 150}
        assert cfg["datastore_name"] == "postgresql" and cfg["instance_count"] == 0
        cid = cfg["id"]

        iid = c.post("/instances", json=create_body("configured")).json()["instance"]["id"]
        inst = wait_instance(c, iid)
        default_work_mem = setting(inst, "work_mem")
        assert default_work_mem != "8MB"

        assert (
            c.put(f"/instances/{iid}", json={"instance": {"configuration": cid}}).status_code == 202
        )
        inst = wait_instance(c, iid, status="RESTART_REQUIRED", operating=None)
        assert inst["configuration"]["id"] == cid
        assert setting(inst, "work_mem") == "8MB", "a dynamic value applies at once"
        assert setting(inst, "max_connections") != "150", "a restart-required one waits"
        r = c.put(f"/instances/{iid}", json={"instance": {"configuration": cid}})
        assert r.status_code in (400, 422)
        assert c.get(f"/configurations/{cid}/instances").json()["instances"] == [
            {"id": iid, "name": "configured"}
        ]
        assert c.get(f"/configurations/{cid}").json()["configuration"]["instance_count"] == 1

        assert c.post(f"/instances/{iid}/action", json={"restart": {}}).status_code == 202
        inst = wait_instance(c, iid)
        assert setting(inst, "max_connections") == "150"
        effective = c.get(f"/instances/{iid}/configuration").json()["instance"]["configuration"]
        assert effective["work_mem"] == 8192 and "shared_buffers" in effective

        # changing the attached group re-applies it to the instance
        r = c.patch(
            f"/configurations/{cid}",
            json={"configuration": {"values": {"statement_timeout": 5000}}},
        )
        assert r.status_code == 200, r.text
        wait_for(lambda: setting(inst, "statement_timeout") == "5s", 30, "the patched value")
        wait_instance(c, iid)
        assert c.get(f"/configurations/{cid}").json()["configuration"]["values"]["work_mem"] == 8192
        r = c.put(f"/configurations/{cid}", json={"configuration": {"values": {"work_mem": 16384}}})
        assert r.status_code == 202
        wait_for(lambda: setting(inst, "work_mem") == "16MB", 30, "the replaced value")
        wait_instance(c, iid, status="RESTART_REQUIRED", operating=None)
        assert setting(inst, "statement_timeout") == "0", "PUT replaces the whole value set"

        r = c.delete(f"/configurations/{cid}")
        assert r.status_code == 400 and "detach" in fault(r)[2]
        assert (
            c.put(f"/instances/{iid}", json={"instance": {"configuration": None}}).status_code
            == 202
        )
        wait_for(lambda: setting(inst, "work_mem") == default_work_mem, 30, "the default back")
        wait_instance(c, iid, status="RESTART_REQUIRED", operating=None)
        assert "configuration" not in c.get(f"/instances/{iid}").json()["instance"]
        assert c.delete(f"/configurations/{cid}").status_code == 202
        assert c.get(f"/configurations/{cid}").status_code == 404
        assert c.post(f"/instances/{iid}/action", json={"restart": {}}).status_code == 202
        wait_instance(c, iid)
        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)


def test_group_given_at_create(admin: Credentials) -> None:
    with admin.client() as c:
        body = {
            "configuration": {
                "name": "at-create",
                "values": {"max_connections": 77, "work_mem": 2048},
                "datastore": {"type": "postgresql"},
            }
        }
        cid = c.post("/configurations", json=body).json()["configuration"]["id"]
        r = c.post("/instances", json=create_body("born-configured", configuration="no-such-group"))
        assert r.status_code == 404
        iid = c.post("/instances", json=create_body("born-configured", configuration=cid)).json()[
            "instance"
        ]["id"]
        inst = wait_instance(c, iid)
        assert setting(inst, "max_connections") == "77" and setting(inst, "work_mem") == "2MB"
        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)
        assert c.delete(f"/configurations/{cid}").status_code == 202
