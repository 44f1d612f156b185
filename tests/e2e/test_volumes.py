"""Volumes are real filesystems; a nearly full one turns its instance read-only, not broken."""

from __future__ import annotations

import os

import psycopg
import pytest

from tests.support.api import create_body, wait_gone, wait_instance
from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration


def test_a_full_volume_blocks_writes_until_it_grows(
    server: CofferServer, admin: Credentials
) -> None:
    with admin.client() as c:
        iid = c.post("/instances", json=create_body("filler")).json()["instance"]["id"]
        inst = wait_instance(c, iid)
        root = server.data_dir / "agent" / "instances" / iid
        if not os.path.ismount(root):
            pytest.skip("this host has no loop/XFS volumes; the agent uses plain directories")
        password = c.post(f"/instances/{iid}/root").json()["user"]["password"]
        dsn = dict(
            host="127.0.0.1", port=inst["port"], user="root", password=password, dbname="shop"
        )
        with psycopg.connect(**dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x text)")
            # a tenant superuser can only fill its own volume, never the host
            with pytest.raises(psycopg.Error, match=r"(?i)fallocate"):
                conn.execute("COPY (SELECT 1) TO PROGRAM 'fallocate -l 2G ballast'")
            conn.execute("COPY (SELECT 1) TO PROGRAM 'rm -f ballast; fallocate -l 830M ballast'")
        inst = wait_instance(c, iid, operating="BLOCKED", timeout=30)
        assert "nearly full" in inst["fault"]["message"]
        with psycopg.connect(**dsn, autocommit=True) as conn:
            with pytest.raises(psycopg.Error, match=r"(?i)read-only"):
                conn.execute("INSERT INTO t VALUES ('refused')")
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,), "reads still work"

        assert (
            c.post(f"/instances/{iid}/action", json={"resize": {"volume": {"size": 2}}}).status_code
            == 202
        )
        inst = wait_instance(c, iid, timeout=60)
        assert "fault" not in inst
        assert inst["volume"]["size"] == 2
        with psycopg.connect(**dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO t SELECT repeat('x', 1000) FROM generate_series(1, 1000)")
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1000,)
        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)
        assert not os.path.ismount(root)
        assert not (server.data_dir / "agent" / "volumes" / f"{iid}.img").exists()
