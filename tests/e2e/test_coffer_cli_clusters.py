"""`coffer cluster ...` against a real server and a real Redis Cluster: create --wait,
list, show (tables and JSON), grow, shrink, restart and delete, each with --wait, with
keys written through the cluster readable all along; bad input ends in one error line
(the server's own message where the server refused) and changes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration

PASSWORD = "cli-cluster-pw-1"
KEYS = 200
WAIT_S = 300.0


@pytest.fixture
def team(server: CofferServer) -> Iterator[Credentials]:
    """A project of its own (so listings hold only this test's clusters), emptied after."""
    creds = server.new_project(f"cli-cl-{time.monotonic_ns()}")
    try:
        yield creds
    finally:
        with creds.client() as c:
            _delete_clusters(c)


def _delete_clusters(c: httpx.Client) -> None:
    """Teardown: delete every cluster of the project (once its task is done) and wait
    until they are gone, members and all."""
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        clusters = c.get("/clusters").json()["clusters"]
        if not clusters:
            assert (
                c.get("/instances", params={"include_clustered": "true"}).json()["instances"] == []
            ), "every member is deleted with its cluster"
            return
        for cluster in clusters:
            if cluster["task"]["name"] == "NONE":
                c.delete(f"/clusters/{cluster['id']}")
        time.sleep(0.5)
    raise AssertionError(f"clusters left after {WAIT_S}s: {c.get('/clusters').text}")


def _refused(res: Any, *, code: int = 1) -> str:
    """The one stderr line of a failed command (the exit code checked)."""
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return str(lines[0])


def _members(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    return list(cluster["instances"])


def _ready(cluster: dict[str, Any], count: int) -> None:
    """What --wait promises: no task, ``count`` members, every one ACTIVE, no fault."""
    assert cluster["task"]["name"] == "NONE", cluster
    assert "fault" not in cluster, cluster
    assert [m["status"] for m in _members(cluster)] == ["ACTIVE"] * count, cluster


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def _keys_on(member: dict[str, Any]) -> int:
    with redis.Redis(
        host=member["ip"][0], port=member["port"], username="app", password=PASSWORD
    ) as node:
        return int(node.dbsize())


def _all_keys_readable(client: RedisCluster) -> bool:
    return all(client.get(f"key:{i}") == str(i).encode() for i in range(KEYS))


def test_cluster_create_grow_shrink_restart_delete(server: CofferServer, team: Credentials) -> None:
    def cli(*args: str) -> str:
        return server.cli("cluster", *args, creds=team).stdout

    def cli_json(*args: str) -> dict[str, Any]:
        return dict(json.loads(cli(*args, "--json"))["cluster"])

    made = cli_json(
        "create",
        "rc",
        "--datastore",
        "redis",
        "--flavor",
        "tiny",
        "--size",
        "1",
        "--members",
        "3",
        "--replicas",
        "1",
        "--wait",
    )
    _ready(made, 4)
    assert made["name"] == "rc" and made["datastore"]["type"] == "redis"
    assert sorted(m["type"] for m in _members(made)) == ["master", "master", "master", "replica"]
    masters = [m for m in _members(made) if m["type"] == "master"]
    (replica,) = [m for m in _members(made) if m["type"] == "replica"]
    assert replica["master"] in {m["id"] for m in masters}

    listed = json.loads(cli("list", "--json"))["clusters"]
    assert [(c["id"], c["name"]) for c in listed] == [(made["id"], "rc")]
    table = cli("list")
    assert made["id"] in table and "4: 4 ACTIVE" in table
    shown = cli_json("show", "rc")
    assert [m["id"] for m in _members(shown)] == [m["id"] for m in _members(made)]
    assert cli_json("show", made["id"])["id"] == made["id"]
    table = cli("show", "rc")
    for member in _members(made):
        assert member["id"] in table and member["name"] in table
        assert f"{member['ip'][0]}:{member['port']}" in table, table

    # the cluster works: a user made through a member, keys spread over every master
    server.cli("user", "create", masters[0]["id"], "app", PASSWORD, creds=team)
    client = RedisCluster(
        startup_nodes=[ClusterNode(masters[0]["ip"][0], masters[0]["port"])],
        username="app",
        password=PASSWORD,
        socket_timeout=5,
    )
    try:
        for i in range(KEYS):
            client.set(f"key:{i}", str(i))
        assert all(_keys_on(m) > 0 for m in masters), "keys spread over every master"

        refuse_bad_actions(server, team, made)

        grown = cli_json("grow", "rc", "--wait")
        _ready(grown, 5)
        new = _members(grown)[-1]
        assert new["type"] == "master" and new["id"] not in {m["id"] for m in _members(made)}
        assert _keys_on(new) > 0, "the new master took its share of the slots and keys"
        assert _all_keys_readable(client)

        shrunk = cli_json("shrink", "rc", new["name"], "--wait")  # a member by name
        _ready(shrunk, 4)
        assert [m["id"] for m in _members(shrunk)] == [m["id"] for m in _members(made)]
        _eventually(lambda: _all_keys_readable(client), "every key readable after the shrink")
        assert sum(_keys_on(m) for m in masters) == KEYS

        restarted = cli_json("restart", "rc", "--wait")
        _ready(restarted, 4)
        _eventually(lambda: _all_keys_readable(client), "every key readable after the restart")
    finally:
        client.close()

    out = cli("delete", "rc", "--wait")
    assert f"deleted cluster rc ({made['id']})" in out
    assert json.loads(cli("list", "--json"))["clusters"] == []
    gone = server.cli("cluster", "show", "rc", check=False, creds=team)
    assert "no cluster has the id or name 'rc'" in _refused(gone)
    with team.client() as c:
        for member in _members(made):
            assert c.get(f"/instances/{member['id']}").status_code == 404


def refuse_bad_actions(server: CofferServer, team: Credentials, made: dict[str, Any]) -> None:
    """Refused actions on a running cluster: one error line each, the cluster unchanged."""

    def refused(*args: str, code: int = 1) -> str:
        res = server.cli("cluster", *args, check=False, creds=team)
        if code != 1:
            assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
            return str(res.stderr)
        return _refused(res)

    masters = [m for m in _members(made) if m["type"] == "master"]
    (replica,) = [m for m in _members(made) if m["type"] == "replica"]
    followed = replica["master"]
    lonely = next(m for m in masters if m["id"] != followed)

    line = refused("shrink", "rc", "no-such-member")
    assert "'no-such-member' is not a member of cluster rc" in line
    assert all(m["name"] in line for m in _members(made)), "the error names the members"
    for master in (followed, lonely["name"]):  # by id and by name
        line = refused("shrink", "rc", master)
        assert "keeps at least 3 masters" in line and "(HTTP 400)" in line  # the server's words
    assert "no cluster has the id or name 'nope'" in refused("grow", "nope")
    assert "at least one member" in refused("grow", "rc", "--members", "0", code=2)

    with team.client() as c:
        after = c.get(f"/clusters/{made['id']}").json()["cluster"]
    _ready(after, 4)
    assert [m["id"] for m in _members(after)] == [m["id"] for m in _members(made)]


def test_bad_cluster_commands_change_nothing(server: CofferServer, team: Credentials) -> None:
    def refused(*args: str) -> str:
        return _refused(server.cli("cluster", *args, check=False, creds=team))

    for command in (("show",), ("restart",), ("delete",), ("shrink", "x")):
        line = refused(command[0], "no-such-cluster", *command[1:])
        assert "no cluster has the id or name 'no-such-cluster'" in line, line

    line = refused(
        "create",
        "two",
        "--datastore",
        "mariadb",
        "--flavor",
        "tiny",
        "--size",
        "1",
        "--members",
        "2",
    )
    assert "needs at least 3 members" in line and "2 given" in line and "(HTTP 400)" in line
    line = refused(
        "create",
        "gal",
        "--datastore",
        "mariadb",
        "--flavor",
        "tiny",
        "--size",
        "1",
        "--replicas",
        "1",
    )
    assert "'replica' is not valid" in line and "(HTTP 400)" in line
    line = refused(
        "create",
        "nodb",
        "--datastore",
        "nosuchdb",
        "--flavor",
        "tiny",
        "--size",
        "1",
    )
    assert "nosuchdb" in line
    res = server.cli(
        "cluster",
        "create",
        "nosize",
        "--datastore",
        "redis",
        "--flavor",
        "tiny",
        check=False,
        creds=team,
    )
    assert res.returncode == 2 and "--size" in res.stderr

    assert json.loads(server.cli("cluster", "list", "--json", creds=team).stdout) == {
        "clusters": []
    }
    with team.client() as c:
        clustered = c.get("/instances", params={"include_clustered": "true"}).json()
    assert clustered["instances"] == []
