"""A MariaDB instance's life through the REST API, checked against the engine."""

from __future__ import annotations

import pymysql
import pytest

from tests.support.api import create_body, fault, wait_gone, wait_instance
from tests.support.processes import CofferServer, Credentials, wait_for

pytestmark = pytest.mark.integration


def connect(
    inst: dict, user: str = "app", password: str = "app-secret-1", db: str | None = "shop"
) -> pymysql.Connection:
    return pymysql.connect(
        host=inst["ip"][0],
        port=inst["port"],
        user=user,
        password=password,
        database=db,
        autocommit=True,
        connect_timeout=5,
    )


def variable(inst: dict, name: str) -> str:
    with connect(inst) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL." + name)
        row = cur.fetchone()
        assert row is not None
        return str(row[0])


def test_mariadb_lifecycle(server: CofferServer, admin: Credentials) -> None:
    with admin.client() as c:
        body = create_body("shop-my", datastore={"type": "mariadb", "version": "10.11"})
        body["instance"]["databases"] = [
            {"name": "shop", "character_set": "utf8mb4", "collate": "utf8mb4_unicode_ci"}
        ]
        iid = c.post("/instances", json=body).json()["instance"]["id"]
        inst = wait_instance(c, iid)
        with connect(inst) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name TEXT)")
            cur.execute("INSERT INTO items VALUES (1, 'one')")
            cur.execute(
                "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                "WHERE SCHEMA_NAME = 'shop'"
            )
            assert cur.fetchone() == ("utf8mb4_unicode_ci",)
        with pytest.raises(pymysql.err.OperationalError):
            connect(inst, password="wrong")
        users = {(u["name"], u["host"]) for u in c.get(f"/instances/{iid}/users").json()["users"]}
        assert users == {("app", "%")}, "internal accounts stay hidden"
        buffer_pool = int(variable(inst, "innodb_buffer_pool_size"))

        one = {
            "users": [
                {
                    "name": "bob",
                    "password": "bob-pw-1",
                    "host": "127.0.0.%",
                    "databases": [{"name": "shop"}],
                }
            ]
        }
        assert c.post(f"/instances/{iid}/users", json=one).status_code == 202
        assert (
            c.get(f"/instances/{iid}/users/bob%40127.0.0.%25").json()["user"]["host"] == "127.0.0.%"
        )
        with connect(inst, "bob", "bob-pw-1") as conn, conn.cursor() as cur:
            cur.execute("SELECT name FROM items")
            assert cur.fetchall() == (("one",),)
        assert c.get(f"/instances/{iid}/users/bob").status_code == 404, "bob@% is another account"
        for reserved in ("root", "mariadb.sys", "coffer_admin"):
            r = c.post(
                f"/instances/{iid}/users", json={"users": [{"name": reserved, "password": "x"}]}
            )
            assert r.status_code == 400, reserved
        assert c.delete(f"/instances/{iid}/users/bob%40127.0.0.%25").status_code == 202

        values = {"max_connections": 123, "long_query_time": 2.5, "innodb_log_file_size": 33554432}
        cfg = {
            "configuration": {
                "name": "my-tuned",
                "values": values,
                "datastore": {"type": "mariadb"},
            }
        }
        r = c.post("/configurations", json=cfg)
        assert r.status_code == 200, r.text
        cid = r.json()["configuration"]["id"]
        r = c.post(
            "/configurations",
            json={
                "configuration": {
                    "name": "bad",
                    "values": {"long_query_time": "slow"},
                    "datastore": {"type": "mariadb"},
                }
            },
        )
        assert r.status_code == 422 and "long_query_time" in fault(r)[2]
        assert (
            c.put(f"/instances/{iid}", json={"instance": {"configuration": cid}}).status_code == 202
        )
        inst = wait_instance(c, iid, status="RESTART_REQUIRED", operating=None)
        assert (
            variable(inst, "max_connections") == "123"
            and float(variable(inst, "long_query_time")) == 2.5
        )
        assert c.post(f"/instances/{iid}/action", json={"restart": {}}).status_code == 202
        inst = wait_instance(c, iid)
        assert variable(inst, "innodb_log_file_size") == "33554432"
        with connect(inst) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM items")
            assert cur.fetchone() == (1,)

        assert (
            c.post(f"/instances/{iid}/action", json={"resize": {"flavorRef": "medium"}}).status_code
            == 202
        )
        inst = wait_instance(c, iid)
        assert int(variable(inst, "innodb_buffer_pool_size")) > buffer_pool

        root = c.post(f"/instances/{iid}/root").json()["user"]
        with connect(inst, "root", root["password"], None) as conn, conn.cursor() as cur:
            cur.execute("CREATE DATABASE made_by_root")
        assert c.delete(f"/instances/{iid}/root").status_code == 204

        assert (
            c.put(f"/instances/{iid}", json={"instance": {"configuration": None}}).status_code
            == 202
        )
        wait_for(lambda: variable(inst, "max_connections") != "123", 30, "the default back")
        # innodb_log_file_size left with the group: it changes at the next restart
        wait_instance(c, iid, status="RESTART_REQUIRED", operating=None)
        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)
        assert c.delete(f"/configurations/{cid}").status_code == 202
