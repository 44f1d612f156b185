"""Flavors become kernel resource limits on the engine's processes (where permitted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.api import create_body, wait_gone, wait_instance
from tests.support.processes import CofferServer, Credentials, processes_under

pytestmark = pytest.mark.integration

V1 = Path("/sys/fs/cgroup")


def cgroup_of(pid: int, controller: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return ""


def test_host_reports_its_modes_and_limits_follow_the_flavor(
    server: CofferServer, admin: Credentials
) -> None:
    with admin.client() as c:
        host = next(h for h in c.get("/mgmt/hosts").json()["hosts"] if h["name"] == "local")
        facts = host["facts"]
        assert facts["volumes"] in ("xfs-loop", "directory")
        assert facts["limits"].startswith(("cgroup v1", "cgroup v2", "none"))
        if not facts["limits"].startswith("cgroup v1"):
            pytest.skip(f"this host's limits mode is {facts['limits']}; the v1 checks do not apply")

        iid = c.post("/instances", json=create_body("limited")).json()["instance"]["id"]
        wait_instance(c, iid)
        group = f"/coffer/{iid}"
        pids = processes_under(server.data_dir / "agent" / "instances" / iid)
        assert pids
        for pid in pids:
            assert cgroup_of(pid, "memory") == group, "every engine process is in the group"
        tiny_ram = 256 * 1024 * 1024
        assert (
            int((V1 / "memory" / group.lstrip("/") / "memory.limit_in_bytes").read_text())
            == tiny_ram
        )
        assert int((V1 / "cpu" / group.lstrip("/") / "cpu.cfs_quota_us").read_text()) == 100_000
        assert int((V1 / "pids" / group.lstrip("/") / "pids.max").read_text()) >= 256

        assert (
            c.post(f"/instances/{iid}/action", json={"resize": {"flavorRef": "medium"}}).status_code
            == 202
        )
        wait_instance(c, iid)
        assert (
            int((V1 / "memory" / group.lstrip("/") / "memory.limit_in_bytes").read_text())
            == 1024**3
        )
        assert int((V1 / "cpu" / group.lstrip("/") / "cpu.cfs_quota_us").read_text()) == 200_000

        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)
        assert not (V1 / "memory" / "coffer" / iid).exists()
