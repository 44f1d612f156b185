"""Point-in-time recovery through the REST API: the change log is shipped while the
instance lives, the instance shows its restorable window, and a restore to a moment
between two writes returns exactly what was committed before it — from the newest
backup before the moment (``instanceRef``) or from a named backup (``backupRef``).
Bad requests change nothing."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.support.api import delete_instances, fault, wait_instance
from tests.support.backups import (
    ENGINES,
    now_utc,
    parse_time,
    restore_at,
    rows,
    store_dir,
    take_backup,
    wait_restorable,
)
from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration

#: MariaDB's binary log stamps events with whole seconds: moments are kept further apart
GAP_S = {"postgresql": 0.6, "mariadb": 2.6}


@pytest.mark.parametrize("name", sorted(GAP_S))
def test_restore_to_a_moment(server: CofferServer, admin: Credentials, name: str) -> None:
    engine, gap = ENGINES[name], GAP_S[name]
    made: list[str] = []
    with admin.client() as c:
        try:
            src = wait_instance(
                c, c.post("/instances", json=engine.body(f"pitr-{name}")).json()["instance"]["id"]
            )
            made.append(src["id"])
            engine.write(src, rows(1, 20))
            assert (
                "latest_restorable_time" not in c.get(f"/instances/{src['id']}").json()["instance"]
            ), "no window before the first backup"
            full = take_backup(c, src["id"], f"pitr-full-{name}")
            time.sleep(gap)
            engine.write(src, rows(21, 10))
            time.sleep(gap)
            middle = now_utc()
            at_middle = engine.contents(src)
            time.sleep(gap)
            engine.write(src, rows(31, 10))
            at_end = engine.contents(src)
            done = now_utc()

            latest = wait_restorable(c, src["id"], done)
            shown = c.get(f"/instances/{src['id']}").json()["instance"]
            assert parse_time(shown["earliest_restorable_time"]) <= middle
            assert parse_time(shown["earliest_restorable_time"]) >= parse_time(full["created"])

            first = restore_at(c, engine, f"pitr-mid-{name}", middle, instanceRef=src["id"])
            made.append(first["id"])
            assert engine.contents(first) == at_middle
            second = restore_at(c, engine, f"pitr-end-{name}", latest, backupRef=full["id"])
            made.append(second["id"])
            assert engine.contents(second) == at_end
            # the restored instance is an ordinary one
            engine.write(second, rows(1000, 1))
        finally:
            delete_instances(c, ids=made)
        shipped = store_dir(server) / full["project_id"] / src["id"] / "logs"
        assert any(shipped.iterdir()), "the change log was shipped to the store"
        # the source is gone: its log goes with its last full backup
        assert c.delete(f"/backups/{full['id']}").status_code == 202
        end = time.monotonic() + 60
        while time.monotonic() < end and shipped.exists():
            time.sleep(0.2)
        assert not shipped.exists()


def test_bad_point_in_time_requests_change_nothing(
    server: CofferServer, admin: Credentials
) -> None:
    pg, redis = ENGINES["postgresql"], ENGINES["redis"]
    other = server.new_project("pitr-other")
    made: list[str] = []
    with admin.client() as c, other.client() as o:
        try:
            src = wait_instance(
                c, c.post("/instances", json=pg.body("pitr-bad")).json()["instance"]["id"]
            )
            made.append(src["id"])
            pg.write(src, rows(1, 5))
            before_backup = now_utc()
            backup = take_backup(c, src["id"], "pitr-bad-full")
            kv = wait_instance(
                c, c.post("/instances", json=redis.body("pitr-kv")).json()["instance"]["id"]
            )
            made.append(kv["id"])
            kv_backup = take_backup(c, kv["id"], "pitr-kv-full")
            wait_restorable(c, src["id"], before_backup)
            count = len(c.get("/instances").json()["instances"])

            def refused(
                client: httpx.Client, point: dict[str, Any], status: int, words: str
            ) -> None:
                body = pg.body("pitr-refused")
                body["instance"]["restorePoint"] = point
                r = client.post("/instances", json=body)
                assert r.status_code == status, r.text
                assert words in fault(r)[2], fault(r)

            soon = (now_utc() + timedelta(hours=1)).isoformat()
            refused(c, {"instanceRef": "no-such-instance", "restore_time": soon}, 404, "")
            refused(c, {"restore_time": soon}, 400, "needs backupRef")
            refused(
                c,
                {"backupRef": backup["id"], "instanceRef": src["id"], "restore_time": soon},
                400,
                "not both",
            )
            refused(c, {"backupRef": backup["id"], "restore_time": "yesterday"}, 400, "")
            refused(c, {"backupRef": backup["id"], "restore_time": soon}, 400, "in the future")
            refused(
                c,
                {"backupRef": backup["id"], "restore_time": before_backup.isoformat()},
                400,
                "before backup",
            )
            refused(
                c,
                {"instanceRef": src["id"], "restore_time": before_backup.isoformat()},
                400,
                "no completed backup before",
            )
            refused(
                c,
                {"backupRef": backup["id"], "restore_time": now_utc().isoformat()},
                400,
                "after the latest restorable time",
            )
            kv_time = now_utc().isoformat()
            refused(c, {"backupRef": kv_backup["id"], "restore_time": kv_time}, 400, "redis")
            refused(o, {"instanceRef": src["id"], "restore_time": kv_time}, 404, "")
            assert len(c.get("/instances").json()["instances"]) == count
            assert o.get("/instances").json()["instances"] == []
        finally:
            delete_instances(c, ids=made)
        for b in (backup, kv_backup):
            assert c.delete(f"/backups/{b['id']}").status_code == 202
