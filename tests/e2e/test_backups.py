"""Backups through the REST API, for every engine: full and incremental backups restored
into new instances whose contents are compared exactly with the source's at the time of
each backup; tampering refused; chains deleted children first; tenancy."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx
import pytest

from tests.support.api import create_body, delete_instances, fault, wait_instance
from tests.support.backups import (
    ENGINES,
    pg_session,
    restore,
    rows,
    store_dir,
    take_backup,
    wait_backup,
    wait_verified,
)
from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration


# -- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_backup_and_restore_chain(server: CofferServer, admin: Credentials, name: str) -> None:
    engine = ENGINES[name]
    made: list[str] = []
    with admin.client() as c:
        try:
            r = c.post("/instances", json=engine.body(f"bk-src-{name}"))
            assert r.status_code == 200, r.text
            src = wait_instance(c, r.json()["instance"]["id"])
            made.append(src["id"])
            engine.write(src, rows(1, 50))
            at_full = engine.contents(src)
            full = take_backup(c, src["id"], f"full-{name}", description="first")
            assert full["parent_id"] is None and full["size"] > 0
            assert full["datastore"]["type"] == name and full["locationRef"]
            assert wait_instance(c, src["id"])["status"] == "ACTIVE"
            engine.write(src, rows(51, 30))

            if engine.incremental:
                inc = take_backup(c, src["id"], f"inc-{name}", incremental=1)
                assert inc["parent_id"] == full["id"]
            else:
                r = c.post(
                    "/backups",
                    json={
                        "backup": {"name": "inc", "instance": src["id"], "parent_id": full["id"]}
                    },
                )
                assert r.status_code == 501, r.text
                assert "incremental" in fault(r)[2]
                inc = take_backup(c, src["id"], f"second-{name}")
            at_inc = engine.contents(src)
            engine.write(src, rows(81, 10))  # after every backup: must not come back

            for b in (full, inc):
                checked = wait_verified(c, b["id"])["verification"]
                assert checked["status"] == "VERIFIED", checked
                assert "match" in checked["detail"] and checked["verified_at"]

            listed = c.get(f"/instances/{src['id']}/backups").json()["backups"]
            assert {b["id"] for b in listed} == {full["id"], inc["id"]}

            first = restore(c, engine, f"bk-full-{name}", full["id"])
            made.append(first["id"])
            assert engine.contents(first) == at_full
            second = restore(c, engine, f"bk-inc-{name}", inc["id"])
            made.append(second["id"])
            assert engine.contents(second) == at_inc
            # restored instances are ordinary ones: writable, manageable
            engine.write(second, rows(1000, 1))
            assert c.get(f"/instances/{second['id']}/users").status_code in (200, 501)
        finally:
            delete_instances(c, ids=made)
        # a parent's delete takes its children first
        assert c.delete(f"/backups/{full['id']}").status_code == 202
        end = time.monotonic() + 60
        while time.monotonic() < end and c.get(f"/backups/{full['id']}").status_code != 404:
            time.sleep(0.2)
        assert c.get(f"/backups/{full['id']}").status_code == 404
        if engine.incremental:
            assert c.get(f"/backups/{inc['id']}").status_code == 404
        else:
            assert c.delete(f"/backups/{inc['id']}").status_code == 202
        project = full["project_id"]
        end = time.monotonic() + 30
        while time.monotonic() < end and any(
            (store_dir(server) / project / b).exists() for b in (full["id"], inc["id"])
        ):
            time.sleep(0.2)
        for b in (full["id"], inc["id"]):
            assert not (store_dir(server) / project / b).exists(), "objects deleted with it"


def test_tampered_backup_is_refused(server: CofferServer, admin: Credentials) -> None:
    engine = ENGINES["postgresql"]
    made: list[str] = []
    with admin.client() as c:
        try:
            src = wait_instance(
                c, c.post("/instances", json=engine.body("bk-tamper")).json()["instance"]["id"]
            )
            made.append(src["id"])
            engine.write(src, rows(1, 20))
            backup = take_backup(c, src["id"], "to-tamper")
            assert wait_verified(c, backup["id"])["verification"]["status"] == "VERIFIED"
            data = store_dir(server) / backup["project_id"] / backup["id"] / "data"
            blob = bytearray(data.read_bytes())
            blob[len(blob) // 2] ^= 0x01
            data.write_bytes(bytes(blob))

            # a re-verification finds the damage, loudly
            assert c.post(f"/backups/{backup['id']}/verify").status_code == 202
            checked = wait_verified(c, backup["id"])["verification"]
            assert checked["status"] == "FAILED" and "tampered" in checked["detail"], checked

            body = engine.body("bk-tampered")
            body["instance"]["restorePoint"] = {"backupRef": backup["id"]}
            r = c.post("/instances", json=body)
            assert r.status_code == 200, r.text
            bad = r.json()["instance"]["id"]
            made.append(bad)
            inst = wait_instance(c, bad, status="ERROR", operating=None, timeout=120)
            assert "tampered" in inst["fault"]["message"], inst["fault"]
            volume = server.data_dir / "agent" / "instances" / bad
            assert not volume.exists() or not any(volume.iterdir()), "nothing half-built left"
        finally:
            delete_instances(c, ids=made)
        assert c.delete(f"/backups/{backup['id']}").status_code == 202


def test_backup_bad_input(server: CofferServer, admin: Credentials) -> None:
    with admin.client() as c:
        unknown = c.post("/backups", json={"backup": {"name": "x", "instance": "nope"}})
        assert unknown.status_code == 404 and "nope" in fault(unknown)[2]
        for body in (
            {"backup": {"instance": "x"}},
            {"backup": {"name": "x", "instance": "y", "incremental": True}},
            {"backup": {"name": "x", "instance": "y", "incremental": 2}},
            {"backup": {"name": "x", "instance": "y", "colour": "red"}},
            {"backup": {"name": "x"}},
            {"backup": {"name": "x", "instance": "y", "swift_container": "elsewhere"}},
        ):
            r = c.post("/backups", json=body)
            assert r.status_code == 400, (body, r.text)
            fault(r)
        r = c.post("/backup_strategies", json={"backup_strategy": {"swift_container": "abc"}})
        assert r.status_code == 400 and "directory" in fault(r)[2]
        assert c.get("/backup_strategies").json() == {"backup_strategies": []}
        assert c.get("/backups/nope").status_code == 404
        assert c.delete("/backups/nope").status_code == 404
        r = c.post(
            "/instances",
            json=create_body("bk-none", restorePoint={"backupRef": "no-such-backup"}),
        )
        assert r.status_code == 404 and "no-such-backup" in fault(r)[2]
        assert not [i for i in c.get("/instances").json()["instances"] if i["name"] == "bk-none"]


def test_backups_are_private_to_their_project(server: CofferServer, admin: Credentials) -> None:
    engine = ENGINES["redis"]
    other = server.new_project("bk-other")
    made: list[str] = []
    with admin.client() as c, other.client() as o:
        try:
            src = wait_instance(
                c, c.post("/instances", json=engine.body("bk-private")).json()["instance"]["id"]
            )
            made.append(src["id"])
            engine.write(src, rows(1, 3))
            backup = take_backup(c, src["id"], "mine")
            assert o.get(f"/backups/{backup['id']}").status_code == 404
            assert backup["id"] not in {b["id"] for b in o.get("/backups").json()["backups"]}
            assert o.delete(f"/backups/{backup['id']}").status_code == 404
            r = o.post("/backups", json={"backup": {"name": "steal", "instance": src["id"]}})
            assert r.status_code == 404
            body = engine.body("bk-steal")
            body["instance"]["restorePoint"] = {"backupRef": backup["id"]}
            assert o.post("/instances", json=body).status_code == 404
            assert o.get("/backups", params={"all_projects": "true"}).status_code == 403
            everything = c.get("/backups", params={"all_projects": "true"}).json()["backups"]
            assert backup["id"] in {b["id"] for b in everything}
        finally:
            delete_instances(c, ids=made)
        assert c.delete(f"/backups/{backup['id']}").status_code == 202


def test_scheduled_backups_and_retention(fresh_server: CofferServer) -> None:
    fresh_server.env.update(COFFER_VERIFY_BACKUPS="false")
    server = fresh_server.start()
    engine = ENGINES["redis"]
    with server.admin().client() as c:
        src = wait_instance(
            c, c.post("/instances", json=engine.body("bk-sched")).json()["instance"]["id"]
        )
        engine.write(src, rows(1, 5))
        bad = [
            ({"full": "every day"}, "cron"),
            ({"full": "* * * * * * * *"}, "cron"),
            ({"full": "0 3 * * *", "retention": "forever"}, "duration"),
            ({"full": "0 3 * * *", "incremental": "0 * * * *"}, "incremental"),
        ]
        for extra, word in bad:
            r = c.post(
                "/backup_schedules", json={"backup_schedule": {"instance_id": src["id"], **extra}}
            )
            assert r.status_code in (400, 501) and word in fault(r)[2], r.text
        assert c.get("/backup_schedules").json()["backup_schedules"] == []
        r = c.post(
            "/backup_schedules",
            json={
                "backup_schedule": {
                    "instance_id": src["id"],
                    "name": "often",
                    "full": "*/2 * * * * *",
                    "retention": "6s",
                }
            },
        )
        assert r.status_code == 202, r.text
        sched = r.json()["backup_schedule"]
        assert sched["full"] == "*/2 * * * * *" and sched["retention"] == "6s"

        def scheduled() -> list[dict[str, Any]]:
            found = c.get("/backups", params={"instance_id": src["id"]}).json()["backups"]
            return [b for b in found if b["name"].startswith("often full")]

        seen: set[str] = set()
        end = time.monotonic() + 90
        while time.monotonic() < end:
            now = {b["id"] for b in scheduled() if b["status"] == "COMPLETED"}
            seen |= now
            if len(seen) >= 4 and len(seen - now) >= 2:
                break
            time.sleep(0.5)
        assert len(seen) >= 4, "the schedule keeps taking backups"
        assert len(seen - {b["id"] for b in scheduled()}) >= 2, "expired ones are pruned"
        shown = c.get(f"/backup_schedules/{sched['id']}").json()["backup_schedule"]
        assert shown["last_run"] and shown["last_run_at"]

        assert c.delete(f"/backup_schedules/{sched['id']}").status_code == 202
        assert c.get(f"/backup_schedules/{sched['id']}").status_code == 404
        time.sleep(3)  # a run already under way may still finish
        settled = {b["id"] for b in scheduled()}
        time.sleep(5)
        assert {b["id"] for b in scheduled()} <= settled, "no backups after the delete"
        delete_instances(c, ids=[src["id"]])


def _big_source(c: httpx.Client) -> dict[str, Any]:
    """A PostgreSQL instance holding ~150 MB, so that a backup takes a moment."""
    engine = ENGINES["postgresql"]
    body = engine.body("bk-crash")
    body["instance"]["volume"] = {"size": 2}
    src = wait_instance(c, c.post("/instances", json=body).json()["instance"]["id"])
    with pg_session(src) as conn:
        conn.execute(
            "CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat(md5((g+1)::text), 30) AS t "
            "FROM generate_series(1, 150000) g"
        )
    return src


@pytest.mark.parametrize("victim", ["agent", "server"])
def test_backup_survives_a_crash(fresh_server: CofferServer, victim: str) -> None:
    fresh_server.env.update(COFFER_VERIFY_BACKUPS="false")
    server = fresh_server.start()
    with server.admin().client() as c:
        src = _big_source(c)
        r = c.post("/backups", json={"backup": {"name": "crash", "instance": src["id"]}})
        bid = r.json()["backup"]["id"]
        end = time.monotonic() + 60
        while c.get(f"/backups/{bid}").json()["backup"]["status"] == "NEW":
            assert time.monotonic() < end
            time.sleep(0.02)
        if victim == "agent":
            pid = server.agent_pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        else:
            server.kill9()
            server.start()
    with server.admin().client() as c:
        done = wait_backup(c, bid, timeout=240)
        assert done["status"] in ("COMPLETED", "FAILED"), done
        inst = wait_instance(c, src["id"], timeout=120)
        assert inst["status"] == "ACTIVE", "the instance is given back"
        stored = store_dir(server) / done["project_id"] / bid
        if done["status"] == "COMPLETED":
            # the re-delivered backup first purged what the killed attempt left
            names = [p.name for p in stored.iterdir()]
            assert "data" in names and not [n for n in names if n.startswith(".")], names
            restored = restore(c, ENGINES["postgresql"], "bk-crash-restored", bid)
            with pg_session(restored) as conn:
                assert conn.execute("SELECT count(*) FROM big").fetchone() == (150000,)
        delete_instances(c, names=["bk-crash", "bk-crash-restored"])
        assert c.delete(f"/backups/{bid}").status_code == 202
        end = time.monotonic() + 60
        while time.monotonic() < end and c.get(f"/backups/{bid}").status_code != 404:
            time.sleep(0.2)
        assert c.get(f"/backups/{bid}").status_code == 404
        left = (
            sorted(str(p.relative_to(stored)) for p in stored.rglob("*")) if stored.exists() else []
        )
        assert left == [], "the delete purges the prefix, crash leftovers (hidden files) too"
