"""A PostgreSQL instance's whole life through the REST API, checked against the engine."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from tests.support.api import create_body, wait_gone, wait_instance
from tests.support.processes import CofferServer, Credentials, port_is_listening, processes_under

pytestmark = pytest.mark.integration


def connect(
    inst: dict, user: str = "app", password: str = "app-secret-1", db: str = "shop"
) -> psycopg.Connection:
    return psycopg.connect(
        host=inst["ip"][0],
        port=inst["port"],
        user=user,
        password=password,
        dbname=db,
        connect_timeout=5,
        autocommit=True,
    )


def volume_gb(root: Path) -> float:
    if not os.path.ismount(root):
        pytest.skip("this host has no loop/XFS volumes; the agent uses plain directories")
    st = os.statvfs(root)
    return st.f_blocks * st.f_frsize / 1024**3


def show(conn: psycopg.Connection, setting: str) -> str:
    row = conn.execute(f"SHOW {setting}").fetchone()
    assert row is not None
    return str(row[0])


def test_instance_lifecycle(server: CofferServer, admin: Credentials) -> None:
    with admin.client() as c:
        r = c.post("/instances", json=create_body("life"))
        assert r.status_code == 200, r.text
        created = r.json()["instance"]
        assert created["status"] == "BUILD"
        assert created["port"] and created["ip"] == ["127.0.0.1"]
        iid = created["id"]

        inst = wait_instance(c, iid)
        assert inst["operating_status"] == "HEALTHY"
        assert inst["datastore"] == {"type": "postgresql", "version": "15", "version_number": "15"}

        with connect(inst) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
            conn.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two')")
            shared_before = show(conn, "shared_buffers")
        with pytest.raises(psycopg.OperationalError):
            connect(inst, password="wrong")

        assert c.post(f"/instances/{iid}/action", json={"restart": {}}).status_code == 202
        inst = wait_instance(c, iid)
        with connect(inst) as conn:
            assert conn.execute("SELECT count(*) FROM items").fetchone() == (2,)

        r = c.post(f"/instances/{iid}/action", json={"resize": {"flavorRef": "medium"}})
        assert r.status_code == 202, r.text
        inst = wait_instance(c, iid)
        assert inst["flavor"]["id"] == "3"
        with connect(inst) as conn:
            assert show(conn, "shared_buffers") != shared_before
            assert conn.execute("SELECT name FROM items WHERE id = 2").fetchone() == ("two",)

        root = server.data_dir / "agent" / "instances" / iid
        assert 0.9 < volume_gb(root) <= 1.0, "the volume is a filesystem of the requested size"
        r = c.post(f"/instances/{iid}/action", json={"resize": {"volume": {"size": 2}}})
        assert r.status_code == 202, r.text
        inst = wait_instance(c, iid)
        assert inst["volume"]["size"] == 2
        assert 1.9 < volume_gb(root) <= 2.0, "grown online"
        with connect(inst) as conn:
            assert conn.execute("SELECT count(*) FROM items").fetchone() == (2,)

        assert c.put(f"/instances/{iid}", json={"instance": {"name": "renamed"}}).status_code == 202
        assert c.get(f"/instances/{iid}").json()["instance"]["name"] == "renamed"

        instance_dir = server.data_dir / "agent" / "instances" / iid
        assert instance_dir.is_dir()
        assert processes_under(instance_dir)
        port = inst["port"]

        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)
        assert not instance_dir.exists()
        assert not processes_under(instance_dir)
        assert not port_is_listening(port)
        assert c.get(f"/instances/{iid}").status_code == 404


def test_users_databases_and_root(server: CofferServer, admin: Credentials) -> None:
    with admin.client() as c:
        r = c.post("/instances", json=create_body("accounts"))
        iid = r.json()["instance"]["id"]
        inst = wait_instance(c, iid)

        assert (
            c.post(
                f"/instances/{iid}/databases", json={"databases": [{"name": "extra"}]}
            ).status_code
            == 202
        )
        names = {d["name"] for d in c.get(f"/instances/{iid}/databases").json()["databases"]}
        assert names == {"shop", "extra"}
        first = c.get(f"/instances/{iid}/databases", params={"limit": 1}).json()
        assert first["databases"] == [{"name": "extra"}]
        assert "marker=extra" in first["links"][0]["href"]
        rest = c.get(f"/instances/{iid}/databases", params={"limit": 1, "marker": "extra"}).json()
        assert rest == {"databases": [{"name": "shop"}]}

        body = {
            "users": [{"name": "bob", "password": "bob-pw-1", "databases": [{"name": "extra"}]}]
        }
        assert c.post(f"/instances/{iid}/users", json=body).status_code == 202
        users = {u["name"]: u for u in c.get(f"/instances/{iid}/users").json()["users"]}
        assert set(users) == {"app", "bob"}
        assert users["bob"]["databases"] == [{"name": "extra"}]
        with connect(inst, user="bob", password="bob-pw-1", db="extra") as conn:
            conn.execute("CREATE TABLE t (x int)")

        assert c.get(f"/instances/{iid}/users/bob").json()["user"]["name"] == "bob"
        assert (
            c.put(
                f"/instances/{iid}/users/bob/databases", json={"databases": [{"name": "shop"}]}
            ).status_code
            == 202
        )
        access = {
            d["name"] for d in c.get(f"/instances/{iid}/users/bob/databases").json()["databases"]
        }
        assert access == {"shop", "extra"}
        assert c.delete(f"/instances/{iid}/users/bob/databases/shop").status_code == 202
        access = {
            d["name"] for d in c.get(f"/instances/{iid}/users/bob/databases").json()["databases"]
        }
        assert access == {"extra"}

        assert (
            c.put(
                f"/instances/{iid}/users/bob", json={"user": {"password": "bob-pw-2"}}
            ).status_code
            == 202
        )
        with connect(inst, user="bob", password="bob-pw-2", db="extra") as conn:
            conn.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError):
            connect(inst, user="bob", password="bob-pw-1", db="extra")

        assert c.get(f"/instances/{iid}/root").json() == {"rootEnabled": False}
        assert c.delete(f"/instances/{iid}/root").status_code == 404
        r = c.post(f"/instances/{iid}/root")
        assert r.status_code == 200, r.text
        root = r.json()["user"]
        assert root["name"] == "root" and root["password"]
        with connect(inst, user="root", password=root["password"], db="postgres") as conn:
            assert conn.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone() == (True,)
        assert c.get(f"/instances/{iid}/root").json() == {"rootEnabled": True}
        assert c.delete(f"/instances/{iid}/root").status_code == 204
        assert c.get(f"/instances/{iid}/root").json() == {"rootEnabled": False}

        assert c.delete(f"/instances/{iid}/users/bob").status_code == 202
        assert c.get(f"/instances/{iid}/users/bob").status_code == 404
        assert c.delete(f"/instances/{iid}/databases/extra").status_code == 202
        assert {d["name"] for d in c.get(f"/instances/{iid}/databases").json()["databases"]} == {
            "shop"
        }
        shown = c.get(f"/mgmt/instances/{iid}").json()["instance"]
        assert shown["server"]["name"] == "local" and shown["task_description"] == "NONE"
        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)


def test_each_instance_runs_as_its_own_unprivileged_user(
    server: CofferServer, admin: Credentials
) -> None:
    with admin.client() as c:
        ids = [
            c.post("/instances", json=create_body(f"owner-{i}")).json()["instance"]["id"]
            for i in range(2)
        ]
        insts = [wait_instance(c, iid) for iid in ids]
        uids = []
        for iid in ids:
            data = server.data_dir / "agent" / "instances" / iid / "data"
            st = data.stat()
            assert st.st_mode & 0o777 == 0o700
            assert st.st_uid != 0
            pids = processes_under(server.data_dir / "agent" / "instances" / iid)
            assert pids and all(os.stat(f"/proc/{p}").st_uid == st.st_uid for p in pids)
            uids.append(st.st_uid)
        assert uids[0] != uids[1]

        # A tenant superuser can run programs, but only as its own instance's account.
        root = c.post(f"/instances/{ids[0]}/root").json()["user"]
        other = server.data_dir / "agent" / "instances" / ids[1] / "data" / "PG_VERSION"
        with connect(insts[0], user="root", password=root["password"], db="postgres") as conn:
            conn.execute("CREATE TEMP TABLE out (line text)")
            conn.execute("COPY out FROM PROGRAM 'id -u'")
            assert conn.execute("SELECT line FROM out").fetchone() == (str(uids[0]),)
            with pytest.raises(psycopg.Error, match=r"(?i)permission denied|program"):
                conn.execute(f"COPY out FROM PROGRAM 'cat {other}'")
        for iid in ids:
            assert c.delete(f"/instances/{iid}").status_code == 202
        for iid in ids:
            wait_gone(c, iid)
