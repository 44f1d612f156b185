"""The `coffer` CLI against a real server: the README's flow, JSON output, errors."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration


def test_readme_flow(server: CofferServer) -> None:
    created = json.loads(server.cli("project", "create", "cli-team", "--json").stdout)
    assert set(created) >= {"endpoint", "project_id", "token"}
    assert created["endpoint"].endswith(f"/v1.0/{created['project_id']}")
    again = json.loads(server.cli("token", "create", "--project", "cli-team", "--json").stdout)
    assert again["project_id"] == created["project_id"] and again["token"] != created["token"]
    team = Credentials(created["endpoint"], created["project_id"], again["token"])

    out = server.cli(
        "instance",
        "create",
        "shop",
        "--datastore",
        "postgresql",
        "--flavor",
        "small",
        "--size",
        "1",
        "--database",
        "shop",
        "--user",
        "app:secret-pw",
        "--wait",
        creds=team,
    ).stdout
    assert "ACTIVE" in out and "secret-pw" not in out
    assert "user=app dbname=shop" in out
    shown = json.loads(server.cli("instance", "show", "shop", "--json", creds=team).stdout)[
        "instance"
    ]
    assert shown["status"] == "ACTIVE" and shown["operating_status"] == "HEALTHY"
    with psycopg.connect(
        host=shown["ip"][0], port=shown["port"], user="app", password="secret-pw", dbname="shop"
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    listed = json.loads(server.cli("instance", "list", "--json", creds=team).stdout)["instances"]
    assert [i["name"] for i in listed] == ["shop"]
    server.cli("user", "create", "shop", "bob", "bob-pw", "--database", "shop", creds=team)
    users = json.loads(server.cli("user", "list", "shop", "--json", creds=team).stdout)["users"]
    assert {u["name"] for u in users} == {"app", "bob"}

    bad = server.cli(
        "instance",
        "create",
        "x",
        "--datastore",
        "postgresql",
        "--flavor",
        "nope",
        "--size",
        "1",
        check=False,
        creds=team,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
    missing = server.cli("instance", "show", "no-such-instance", check=False, creds=team)
    assert missing.returncode == 1 and "error:" in missing.stderr

    server.cli("instance", "resize-volume", "shop", "2", "--wait", creds=team)
    server.cli("instance", "delete", "shop", "--wait", creds=team)
    assert (
        json.loads(server.cli("instance", "list", "--json", creds=team).stdout)["instances"] == []
    )


def test_cli_finds_credentials_in_the_data_dir(server: CofferServer) -> None:
    flavors = json.loads(
        server.cli("--data-dir", str(server.data_dir), "flavor", "list", "--json").stdout
    )
    assert {"tiny", "small", "medium", "large"} <= {f["name"] for f in flavors["flavors"]}
