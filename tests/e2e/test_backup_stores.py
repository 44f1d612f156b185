"""Backups kept in a real Swift, through its own API and through its S3 API: taken,
verified, restored and deleted exactly as with the default directory store."""

from __future__ import annotations

import time
import uuid

import pytest

from coffer.storage import open_store
from tests.support.api import delete_instances, wait_instance
from tests.support.backups import (
    ENGINES,
    now_utc,
    restore,
    restore_at,
    rows,
    take_backup,
    wait_restorable,
    wait_verified,
)
from tests.support.processes import CofferServer
from tests.support.swift import SwiftCluster, swift  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group("backup_stores"),
]


@pytest.mark.parametrize("kind", ["swift", "s3"])
def test_backups_in_swift(
    fresh_server: CofferServer, request: pytest.FixtureRequest, kind: str
) -> None:
    cluster: SwiftCluster = request.getfixturevalue("swift")
    bucket = f"coffer-{kind}-{uuid.uuid4().hex[:12]}"  # a valid bucket name whatever the run
    config = cluster.swift_config(bucket) if kind == "swift" else cluster.s3_config(bucket)
    fresh_server.env.update(COFFER_BACKUP_STORE=config.model_dump_json())
    server = fresh_server.start()
    engine = ENGINES["postgresql"]
    store = open_store(config)
    with server.admin().client() as c:
        src = wait_instance(
            c, c.post("/instances", json=engine.body(f"st-{kind}")).json()["instance"]["id"]
        )
        made = [src["id"]]
        try:
            engine.write(src, rows(1, 200))
            expected = engine.contents(src)
            backup = take_backup(c, src["id"], f"in-{kind}")
            assert backup["locationRef"].startswith(kind if kind == "swift" else "s3")
            prefix = f"{backup['project_id']}/{backup['id']}/"
            assert store.list(prefix) == [prefix + "data", prefix + "manifest.json"]
            assert wait_verified(c, backup["id"])["verification"]["status"] == "VERIFIED"
            restored = restore(c, engine, f"st-{kind}-restored", backup["id"])
            made.append(restored["id"])
            assert engine.contents(restored) == expected

            # point-in-time recovery: the change log is shipped to the same store
            engine.write(src, rows(201, 10))
            time.sleep(0.5)
            moment = now_utc()
            at_moment = engine.contents(src)
            time.sleep(0.5)
            engine.write(src, rows(211, 10))
            wait_restorable(c, src["id"], now_utc())
            logs = f"{backup['project_id']}/{src['id']}/logs/"
            assert store.list(logs), "the WAL is shipped to the store"
            then = restore_at(c, engine, f"st-{kind}-pitr", moment, instanceRef=src["id"])
            made.append(then["id"])
            assert engine.contents(then) == at_moment

            # Trove's backup strategies: this instance's backups go to another container
            other = f"{bucket}-alt"
            for bad in ("UPPER", "a", "with/slash", "x" * 70):
                r = c.post(
                    "/backup_strategies",
                    json={"backup_strategy": {"instance_id": src["id"], "swift_container": bad}},
                )
                assert r.status_code == 400, (bad, r.text)
            r = c.post(
                "/backup_strategies",
                json={"backup_strategy": {"instance_id": src["id"], "swift_container": other}},
            )
            assert r.status_code == 202, r.text
            assert r.json()["backup_strategy"]["swift_container"] == other
            listed = c.get("/backup_strategies", params={"instance_id": src["id"]}).json()
            assert [x["swift_container"] for x in listed["backup_strategies"]] == [other]
            moved = take_backup(c, src["id"], f"moved-{kind}")
            alt = open_store(config.model_copy(update={"container": other}))
            moved_prefix = f"{moved['project_id']}/{moved['id']}/"
            assert alt.list(moved_prefix) == [moved_prefix + "data", moved_prefix + "manifest.json"]
            assert store.list(moved_prefix) == []
            assert wait_verified(c, moved["id"])["verification"]["status"] == "VERIFIED"
            assert (
                c.delete("/backup_strategies", params={"instance_id": src["id"]}).status_code == 202
            )
            assert c.get("/backup_strategies").json()["backup_strategies"] == []
            assert c.delete(f"/backups/{moved['id']}").status_code == 202
        finally:
            delete_instances(c, ids=made)
        assert c.delete(f"/backups/{backup['id']}").status_code == 202
        end = time.monotonic() + 60
        while store.list(prefix) and time.monotonic() < end:
            time.sleep(0.2)
        assert store.list(prefix) == [], "the backup's objects are deleted with it"
        while store.list(logs) and time.monotonic() < end:
            time.sleep(0.2)
        assert store.list(logs) == [], "the shipped log goes with the last full backup"
