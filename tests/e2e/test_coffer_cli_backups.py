"""`coffer backup ...` against a real server and a real Redis: take backups with --wait,
list and show them (JSON and tables), restore one into a new instance whose data is that
of the backup, delete them; bad input ends in one error line and changes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.support.api import delete_instances
from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration

PASSWORD = "cli-backup-pw-1"


@pytest.fixture
def team(server: CofferServer) -> Iterator[Credentials]:
    """A project of its own (so listings hold only this test's backups), emptied after."""
    creds = server.new_project(f"cli-bk-{time.monotonic_ns()}")
    try:
        yield creds
    finally:
        with creds.client() as c:
            delete_instances(c, names=["bk-cache", "bk-restored", "bk-never"])
            _delete_backups(c)


def _delete_backups(c: httpx.Client, timeout: float = 60) -> None:
    """Teardown: delete every backup of the project and wait until they are gone."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        backups = c.get("/backups").json()["backups"]
        if not backups:
            return
        for b in backups:
            c.delete(f"/backups/{b['id']}")
        time.sleep(0.5)
    raise AssertionError(f"backups left after {timeout}s: {c.get('/backups').text}")


def _json(server: CofferServer, creds: Credentials, *args: str) -> Any:
    return json.loads(server.cli(*args, "--json", creds=creds).stdout)


def _redis(inst: dict[str, Any]) -> redis.Redis:
    return redis.Redis(
        host=inst["ip"][0], port=inst["port"], username="app", password=PASSWORD, socket_timeout=5
    )


def _contents(inst: dict[str, Any]) -> dict[bytes, bytes | None]:
    with _redis(inst) as r:
        return {k: r.get(k) for k in sorted(r.scan_iter(count=1000))}


def _refused(res: Any, *, code: int = 1) -> str:
    """The one stderr line of a failed command (the exit code checked)."""
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    if code == 1:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
        return str(lines[0])
    return str(res.stderr)


def test_backup_create_list_show_restore_delete(server: CofferServer, team: Credentials) -> None:
    cli = server.cli
    cli(
        "instance",
        "create",
        "bk-cache",
        "--datastore",
        "redis",
        "--flavor",
        "tiny",
        "--size",
        "1",
        "--user",
        f"app:{PASSWORD}",
        "--wait",
        creds=team,
    )
    source = _json(server, team, "instance", "show", "bk-cache")["instance"]
    with _redis(source) as r:
        for i in range(200):
            r.set(f"item:{i}", f"value {i} ✓".encode() * 50)
    at_backup = _contents(source)

    # create --wait: progress on stderr, then the finished backup as one table row
    out = cli(
        "backup", "create", "bk-cache", "nightly", "--description", "first", "--wait", creds=team
    ).stdout
    assert "nightly" in out and "COMPLETED" in out and "redis" in out
    with _redis(source) as r:
        r.set("after-backup", "must not come back")
    nightly = _json(server, team, "backup", "show", "nightly")["backup"]
    assert nightly["status"] == "COMPLETED" and nightly["description"] == "first"
    assert nightly["instance_id"] == source["id"] and nightly["parent_id"] is None
    assert nightly["raw_size"] > 0 and nightly["checksum"] and nightly["locationRef"]

    # a second backup with the same name, JSON straight from the server
    second = _json(server, team, "backup", "create", "bk-cache", "nightly", "--wait")["backup"]
    assert second["status"] == "COMPLETED" and second["id"] != nightly["id"]

    listed = _json(server, team, "backup", "list")["backups"]
    assert [b["id"] for b in listed] == [second["id"], nightly["id"]]  # newest first
    by_instance = _json(server, team, "backup", "list", "--instance", "bk-cache")["backups"]
    assert {b["id"] for b in by_instance} == {nightly["id"], second["id"]}
    assert _json(server, team, "backup", "list", "--datastore", "redis")["backups"] == listed
    assert _json(server, team, "backup", "list", "--datastore", "mariadb")["backups"] == []
    table = cli("backup", "list", creds=team).stdout
    assert nightly["id"] in table and second["id"] in table and "COMPLETED" in table
    shown = cli("backup", "show", nightly["id"], creds=team).stdout
    assert nightly["checksum"] in shown and "first" in shown and source["id"] in shown

    # the name is now ambiguous: one error line naming both ids
    ambiguous = _refused(cli("backup", "show", "nightly", check=False, creds=team))
    assert "2 backups are named 'nightly'" in ambiguous and nightly["id"] in ambiguous

    # restore the first backup into a new instance and read its data back
    out = cli(
        "backup",
        "restore",
        nightly["id"],
        "bk-restored",
        "--flavor",
        "tiny",
        "--size",
        "1",
        "--wait",
        creds=team,
    ).stdout
    assert "ACTIVE / HEALTHY" in out and "connect: redis-cli" in out and PASSWORD not in out
    restored = _json(server, team, "instance", "show", "bk-restored")["instance"]
    assert restored["id"] != source["id"] and restored["datastore"]["type"] == "redis"
    assert _contents(restored) == at_backup
    # a point in time: Redis has no change log to roll forward, said in one line
    no_log = cli(
        "backup",
        "restore",
        nightly["id"],
        "bk-never",
        "--flavor",
        "tiny",
        "--size",
        "1",
        "--time",
        "2026-01-01T00:00:00Z",
        check=False,
        creds=team,
    )
    assert "no change log" in _refused(no_log)

    # verification: every backup is proven restorable; `verify` runs it again
    end = time.monotonic() + 120
    while _json(server, team, "backup", "show", nightly["id"])["backup"]["verification"][
        "status"
    ] in (None, "PENDING", "RUNNING"):
        assert time.monotonic() < end, "verification did not end"
        time.sleep(0.5)
    cli("backup", "verify", nightly["id"], creds=team)
    while True:
        checked = _json(server, team, "backup", "show", nightly["id"])["backup"]["verification"]
        if checked["status"] not in ("PENDING", "RUNNING"):
            break
        assert time.monotonic() < end + 120, "re-verification did not end"
        time.sleep(0.5)
    assert checked["status"] == "VERIFIED", checked
    assert "VERIFIED" in cli("backup", "show", nightly["id"], creds=team).stdout

    # schedules: bad cron refused in one line; created, listed, deleted
    bad = cli(
        "backup", "schedule", "create", "bk-cache", "--full", "daily", check=False, creds=team
    )
    assert "cron" in _refused(bad)
    made = _json(
        server,
        team,
        "backup",
        "schedule",
        "create",
        "bk-cache",
        "--full",
        "0 3 * * *",
        "--retention",
        "14d",
        "--name",
        "nightly-auto",
    )["backup_schedule"]
    assert (made["full"], made["retention"], made["instance_id"]) == (
        "0 3 * * *",
        "14d",
        source["id"],
    )
    listed = _json(server, team, "backup", "schedule", "list", "--instance", "bk-cache")
    assert [x["id"] for x in listed["backup_schedules"]] == [made["id"]]
    assert "nightly-auto" in cli("backup", "schedule", "list", creds=team).stdout
    cli("backup", "schedule", "delete", made["id"], creds=team)
    assert _json(server, team, "backup", "schedule", "list")["backup_schedules"] == []

    # delete: by id, waiting until the backup is gone
    cli("backup", "delete", second["id"], "--wait", creds=team)
    assert second["id"] in _refused(cli("backup", "show", second["id"], check=False, creds=team))
    out = cli("backup", "delete", "nightly", "--wait", creds=team).stdout
    assert f"deleted backup nightly ({nightly['id']})" in out
    assert _json(server, team, "backup", "list")["backups"] == []


def test_backup_bad_input_is_one_line_and_changes_nothing(
    server: CofferServer, team: Credentials
) -> None:
    cli = server.cli
    missing = _refused(cli("backup", "show", "no-such-backup", check=False, creds=team))
    assert "no-such-backup" in missing
    _refused(cli("backup", "delete", "no-such-backup", "--wait", check=False, creds=team))
    _refused(
        cli(
            "backup",
            "restore",
            "no-such-backup",
            "bk-never",
            "--flavor",
            "tiny",
            "--size",
            "1",
            check=False,
            creds=team,
        )
    )
    _refused(cli("backup", "create", "no-such-instance", "x", check=False, creds=team))
    both = cli(
        "backup",
        "create",
        "no-such-instance",
        "x",
        "--parent",
        "p",
        "--incremental",
        check=False,
        creds=team,
    )
    assert "not both" in _refused(both, code=2)
    assert _json(server, team, "backup", "list")["backups"] == []
    assert _json(server, team, "instance", "list")["instances"] == []
