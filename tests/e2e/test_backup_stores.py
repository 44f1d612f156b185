"""Backups kept in a real Swift, through its own API and through its S3 API: taken,
verified, restored and deleted exactly as with the default directory store."""

from __future__ import annotations

import time

import pytest

from coffer.storage import open_store
from tests.support.api import delete_instances, wait_instance
from tests.support.backups import ENGINES, restore, rows, take_backup, wait_verified
from tests.support.processes import CofferServer
from tests.support.swift import SwiftCluster, swift, swift_installed  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group("backup_stores"),
    pytest.mark.skipif(not swift_installed(), reason="Debian's swift packages are not installed"),
]


@pytest.mark.parametrize("kind", ["swift", "s3"])
def test_backups_in_swift(
    fresh_server: CofferServer, request: pytest.FixtureRequest, kind: str
) -> None:
    cluster: SwiftCluster = request.getfixturevalue("swift")
    bucket = f"coffer-{kind}-{fresh_server.data_dir.name[-8:].lower().replace('_', '-')}"
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
        finally:
            delete_instances(c, ids=made)
        assert c.delete(f"/backups/{backup['id']}").status_code == 202
        end = time.monotonic() + 60
        while store.list(prefix) and time.monotonic() < end:
            time.sleep(0.2)
        assert store.list(prefix) == [], "the backup's objects are deleted with it"
