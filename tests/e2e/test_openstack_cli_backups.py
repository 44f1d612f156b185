"""``openstack database backup ...`` and ``instance create --backup`` against a real server:
the real client's parsing of backup views, its name lookup, incrementals, restore."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.test_openstack_cli import CREATE_ARGS, Cli, connect, create, scalar
from tests.support.api import delete_instances
from tests.support.processes import Credentials

pytestmark = pytest.mark.integration

BACKUP = ("database", "backup")


@pytest.fixture
def cli(admin: Credentials) -> Cli:
    return Cli(admin)


def wait_completed(cli: Cli, backup: str, timeout: float = 180) -> dict[str, Any]:
    end = time.monotonic() + timeout
    shown: dict[str, Any] = {}
    while time.monotonic() < end:
        shown = dict(cli.json(*BACKUP, "show", backup))
        assert shown["status"] != "FAILED", shown
        if shown["status"] == "COMPLETED":
            return shown
        time.sleep(0.3)
    raise AssertionError(f"backup {backup} not COMPLETED in {timeout}s: {shown}")


def test_backups_with_the_openstack_cli(cli: Cli, admin: Credentials) -> None:
    names: set[str] = set()
    try:
        create(cli, names, "os-bk")
        shown = cli.wait_active("os-bk")
        with connect(shown) as conn:
            conn.execute("CREATE TABLE t (id int)")
            conn.execute("INSERT INTO t SELECT generate_series(1, 10)")
        made = dict(cli.json(*BACKUP, "create", "os-full", "-i", "os-bk", "--description", "d"))
        assert made["status"] == "NEW" and made["name"] == "os-full"
        full = wait_completed(cli, "os-full")  # addressed by name: the CLI's lookup
        assert full["datastore"] and full["instance_id"] == shown["id"]
        with connect(shown) as conn:
            conn.execute("INSERT INTO t SELECT generate_series(11, 15)")
        inc = dict(cli.json(*BACKUP, "create", "os-inc", "-i", "os-bk", "--incremental"))
        inc = wait_completed(cli, inc["id"])
        assert inc["parent_id"] == full["id"]
        rows = cli.json(*BACKUP, "list")
        assert {r["Name"] for r in rows} >= {"os-full", "os-inc"}
        of_instance = cli.json(*BACKUP, "list", "--instance-id", shown["id"])
        assert {r["ID"] for r in of_instance} == {full["id"], inc["id"]}

        names.add("os-bk-restored")
        cli.ok(
            "database", "instance", "create", "os-bk-restored", *CREATE_ARGS, "--backup", "os-inc"
        )
        restored = cli.wait_active("os-bk-restored", timeout=180)
        with connect(restored) as conn:
            assert scalar(conn, "SELECT count(*) FROM t") == 15

        missing = cli.fails(*BACKUP, "show", "no-such-backup")
        assert "no-such-backup" in missing, missing
        cli.ok(*BACKUP, "delete", "os-full")  # its incremental goes first
        end = time.monotonic() + 60
        while time.monotonic() < end and cli.json(*BACKUP, "list"):
            time.sleep(0.3)
        assert not {r["Name"] for r in cli.json(*BACKUP, "list")} & {"os-full", "os-inc"}
    finally:
        with admin.client() as c:
            delete_instances(c, names=names)
