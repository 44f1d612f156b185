"""`coffer stack apply/show/delete` against a real server with real engines: a Redis
instance, a PostgreSQL instance with a database and a user, and a Redis Cluster are
created from one template; a changed name and size, an attached configuration group, a
new database, a new user, a grant and a new password are applied in place (same ids,
nothing recreated); a second apply reports no change; going back detaches, revokes and
deletes what the template dropped; a change that cannot happen in place is refused and
changes nothing; delete leaves nothing behind."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration

PASSWORD = "stack-app-pw-1"
NEW_PASSWORD = "stack-app-pw-2"
RO_PASSWORD = "stack-ro-pw-1"
WAIT_S = 600.0
TEMPLATE = textwrap.dedent(
    """
    heat_template_version: 2021-04-16
    description: a cache, a database and a Redis Cluster
    parameters:
      db_name: {type: string, default: shop-db}
      db_size: {type: number, default: 1}
      app_password: {type: string, hidden: true}
    resources:
      cache:
        type: OS::Trove::Instance
        properties:
          flavor: tiny
          size: 1
          datastore_type: redis
      db:
        type: OS::Trove::Instance
        properties:
          name: {get_param: db_name}
          flavor: tiny
          size: {get_param: db_size}
          datastore_type: postgresql
          datastore_version: 15
          databases: [{name: shop}]
          users:
            - {name: app, password: {get_param: app_password}, databases: [shop]}
      ring:
        type: OS::Trove::Cluster
        depends_on: cache
        properties:
          datastore_type: redis
          datastore_version: "7.0"
          instances:
            - {flavor: tiny, volume_size: 1}
            - {flavor: tiny, volume_size: 1}
            - {flavor: tiny, volume_size: 1}
    outputs:
      db_host: {value: {get_attr: [db, hostname]}}
      db_port: {value: {get_attr: [db, port]}}
      db_href: {value: {get_attr: [db, href]}}
      db_id: {value: {get_resource: db}}
      ring_members: {value: {get_attr: [ring, instances]}}
      ring_ip: {value: {get_attr: [ring, ip]}}
    """
)


#: the update: the database gets a configuration group, a second database, a second user
#: and the first user access to both (the assert below checks the replacements hit)
UPDATED = TEMPLATE.replace(
    "  app_password: {type: string, hidden: true}\n",
    "  app_password: {type: string, hidden: true}\n  db_config: {type: string}\n",
).replace(
    """      databases: [{name: shop}]
      users:
        - {name: app, password: {get_param: app_password}, databases: [shop]}
""",
    f"""      configuration: {{get_param: db_config}}
      databases: [{{name: shop}}, {{name: audit}}]
      users:
        - {{name: app, password: {{get_param: app_password}}, databases: [shop, audit]}}
        - {{name: ro, password: {RO_PASSWORD}, databases: [audit]}}
""",
)

assert "db_config" in UPDATED and "name: ro" in UPDATED


@pytest.fixture
def team(server: CofferServer) -> Iterator[Credentials]:
    """A project of its own; whatever a failed test left is deleted afterwards."""
    creds = server.new_project(f"stack-{time.monotonic_ns()}")
    try:
        yield creds
    finally:
        with creds.client() as c:
            _delete_everything(c)


def _delete_everything(c: httpx.Client) -> None:
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        clusters = c.get("/clusters").json()["clusters"]
        instances = c.get("/instances", params={"include_clustered": "true"}).json()["instances"]
        if not clusters and not instances:
            for cfg in c.get("/configurations").json()["configurations"]:
                c.delete(f"/configurations/{cfg['id']}")
            return
        for cluster in clusters:
            if cluster["task"]["name"] == "NONE":
                c.delete(f"/clusters/{cluster['id']}")
        for instance in instances:
            if not instance.get("cluster_id") and instance["status"] not in ("SHUTDOWN", "BUILD"):
                c.delete(f"/instances/{instance['id']}")
        time.sleep(1)
    raise AssertionError("resources left after the test")


def _refused(res: Any) -> str:
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), res.stderr
    return str(lines[-1])


def _by_resource(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["resource"]: r for r in report["resources"]}


def test_stack_apply_update_noop_delete(
    server: CofferServer, team: Credentials, tmp_path: Path
) -> None:
    template = tmp_path / "shop.yaml"
    template.write_text(TEMPLATE)
    state_file = server.data_dir / "stacks" / team.project_id / "shop.json"
    secret = f"app_password={PASSWORD}"

    def stack(*args: str, check: bool = True) -> Any:
        return server.cli("stack", *args, creds=team, check=check, timeout=1500)

    def apply(*params: str) -> dict[str, Any]:
        args = [a for p in params for a in ("--parameter", p)]
        return dict(json.loads(stack("apply", str(template), *args, "--json").stdout))

    # ---------------------------------------------------------------- create
    created = apply(secret)
    rows = _by_resource(created)
    assert [r["resource"] for r in created["resources"]] == ["cache", "db", "ring"]
    assert {r["action"] for r in rows.values()} == {"created"}
    assert {r["status"] for r in rows.values()} == {"ACTIVE"}
    assert rows["cache"]["name"] == "shop-cache" and rows["ring"]["name"] == "shop-ring"
    assert rows["db"]["name"] == "shop-db"
    ids = {name: row["id"] for name, row in rows.items()}
    outputs = created["outputs"]
    assert outputs["db_id"] == ids["db"]
    assert outputs["db_href"].endswith(f"/instances/{ids['db']}")
    assert len(outputs["ring_members"]) == 3 and outputs["ring_ip"]

    with team.client() as c:
        cache = c.get(f"/instances/{ids['cache']}").json()["instance"]
        db = c.get(f"/instances/{ids['db']}").json()["instance"]
        assert (cache["datastore"]["type"], cache["status"], cache["operating_status"]) == (
            "redis",
            "ACTIVE",
            "HEALTHY",
        )
        assert (db["datastore"]["type"], db["datastore"]["version"]) == ("postgresql", "15")
        assert (db["volume"]["size"], db["flavor"]["id"]) == (1, "1")
        assert (outputs["db_host"], outputs["db_port"]) == (db["hostname"], db["port"])
        databases = {
            d["name"] for d in c.get(f"/instances/{ids['db']}/databases").json()["databases"]
        }
        assert "shop" in databases
        users = c.get(f"/instances/{ids['db']}/users").json()["users"]
        (app,) = [u for u in users if u["name"] == "app"]
        assert [d["name"] for d in app["databases"]] == ["shop"]
        ring = c.get(f"/clusters/{ids['ring']}").json()["cluster"]
        assert ring["datastore"]["type"] == "redis" and ring["task"]["name"] == "NONE"
        assert sorted(m["id"] for m in ring["instances"]) == sorted(outputs["ring_members"])
        assert [m["status"] for m in ring["instances"]] == ["ACTIVE"] * 3
        before = {
            i["id"]
            for i in c.get("/instances", params={"include_clustered": "true"}).json()["instances"]
        }
    assert len(before) == 5  # two instances, three cluster members
    with psycopg.connect(
        host=db["ip"][0], port=db["port"], user="app", password=PASSWORD, dbname="shop"
    ) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("shop",)
    state = state_file.read_text()
    assert PASSWORD not in state and ids["db"] in state and ids["ring"] in state

    # ---------------------------------------------------------------- update in place
    with team.client() as c:
        body = {
            "configuration": {
                "name": "stack-tuned",
                "values": {"work_mem": 8192},
                "datastore": {"type": "postgresql", "version": "15"},
            }
        }
        r = c.post("/configurations", json=body)
        assert r.status_code == 200, r.text
        config_id = r.json()["configuration"]["id"]
    template.write_text(UPDATED)
    params = (f"app_password={NEW_PASSWORD}", "db_name=shop-db-2", "db_size=2")
    updated = apply(*params, f"db_config={config_id}")
    rows = _by_resource(updated)
    assert {name: row["id"] for name, row in rows.items()} == ids
    assert rows["db"]["action"] == "updated"
    assert rows["db"]["changes"] == [
        "rename to shop-db-2",
        "grow volume to 2 GB",
        f"attach configuration {config_id}",
        "create databases audit",
        "grant app@% audit",
        "set password of app@%",
        "create user ro@%",
    ]
    assert rows["db"]["name"] == "shop-db-2" and rows["db"]["status"] == "ACTIVE"
    assert (rows["cache"]["action"], rows["ring"]["action"]) == ("unchanged", "unchanged")
    with team.client() as c:
        db = c.get(f"/instances/{ids['db']}").json()["instance"]
        assert (db["name"], db["volume"]["size"], db["status"]) == ("shop-db-2", 2, "ACTIVE")
        assert db["configuration"]["id"] == config_id
        after = {
            i["id"]
            for i in c.get("/instances", params={"include_clustered": "true"}).json()["instances"]
        }
    assert after == before  # nothing recreated
    with psycopg.connect(
        host=db["ip"][0], port=db["port"], user="app", password=NEW_PASSWORD, dbname="audit"
    ) as conn:
        assert conn.execute("SHOW work_mem").fetchone() == ("8MB",)
    with psycopg.connect(
        host=db["ip"][0], port=db["port"], user="ro", password=RO_PASSWORD, dbname="audit"
    ) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("ro",)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            host=db["ip"][0], port=db["port"], user="app", password=PASSWORD, dbname="shop"
        ).close()
    assert NEW_PASSWORD not in state_file.read_text() and RO_PASSWORD not in state_file.read_text()

    # ---------------------------------------------------------------- no change
    again = apply(*params, f"db_config={config_id}")
    assert again["changed"] is False and again["summary"] == "no change"
    assert {r["action"] for r in again["resources"]} == {"unchanged"}
    show_args = [a for p in (*params, f"db_config={config_id}") for a in ("-P", p)]
    shown = json.loads(stack("show", str(template), *show_args, "--json").stdout)
    assert {r["action"] for r in shown["resources"]} == {"in sync"}
    table = stack("apply", str(template), *show_args).stdout
    assert "no change" in table and "unchanged" in table and NEW_PASSWORD not in table

    # ---------------------------------------------------------------- refused: nothing changes
    shrink = (
        f"app_password={NEW_PASSWORD}",
        "db_name=other",
        "db_size=1",
        f"db_config={config_id}",
    )
    shrink_args = [a for p in shrink for a in ("-P", p)]
    line = _refused(stack("apply", str(template), *shrink_args, check=False))
    assert "size cannot shrink (2 GB -> 1 GB)" in line
    bad = tmp_path / "shop-bad.yaml"
    bad.write_text(
        UPDATED.replace("datastore_type: redis\n  db:", "datastore_type: mariadb\n  db:")
    )
    line = _refused(stack("apply", str(bad), "--name", "shop", *show_args, check=False))
    assert "datastore_type cannot change in place (redis -> mariadb)" in line
    with team.client() as c:
        db = c.get(f"/instances/{ids['db']}").json()["instance"]
        assert (db["name"], db["volume"]["size"]) == ("shop-db-2", 2)  # not even renamed

    # ---------------------------------------------------------------- back: drop what was added
    template.write_text(TEMPLATE)
    back = apply(*params)
    rows = _by_resource(back)
    assert {name: row["id"] for name, row in rows.items()} == ids
    assert rows["db"]["changes"] == [
        "detach configuration",
        "revoke app@% audit",
        "delete user ro@%",
        "delete database audit",
    ]
    with team.client() as c:
        db = c.get(f"/instances/{ids['db']}").json()["instance"]
        assert "configuration" not in db and db["status"] == "ACTIVE"
        names = {d["name"] for d in c.get(f"/instances/{ids['db']}/databases").json()["databases"]}
        assert "shop" in names and "audit" not in names
        users = {u["name"] for u in c.get(f"/instances/{ids['db']}/users").json()["users"]}
        assert "app" in users and "ro" not in users

    # ---------------------------------------------------------------- delete
    deleted = json.loads(stack("delete", str(template), "--json").stdout)
    rows = _by_resource(deleted)
    assert {name: row["action"] for name, row in rows.items()} == {
        "cache": "deleted",
        "db": "deleted",
        "ring": "deleted",
    }
    assert [r["resource"] for r in deleted["resources"]].index("ring") < [
        r["resource"] for r in deleted["resources"]
    ].index("cache")  # the cluster depended on the cache: it went first
    with team.client() as c:
        assert c.get("/clusters").json()["clusters"] == []
        listed = c.get("/instances", params={"include_clustered": "true"}).json()["instances"]
        assert listed == []
        for resource_id in ids.values():
            kind = "clusters" if resource_id == ids["ring"] else "instances"
            assert c.get(f"/{kind}/{resource_id}").status_code == 404
    assert not state_file.exists()
    again_deleted = json.loads(stack("delete", str(template), "--json").stdout)
    assert again_deleted["resources"] == [] and again_deleted["summary"] == "nothing to delete"
