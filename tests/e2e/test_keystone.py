"""Password login through the Keystone v3 subset, as the OpenStack tools do it.

The real ``openstack`` CLI runs with ``OS_AUTH_URL=<server>/v3``, a user name, a password
and a project name (no token, no endpoint): keystoneauth discovers ``/v3``, logs in with
``POST /v3/auth/tokens``, finds the ``database`` endpoint in the token's catalog and sends
the token to Coffer. Token validation, revocation and expiry are checked on the wire, and
no password reaches the server's logs or its metadata database in plain text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import delete_instances
from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration

OPENSTACK = Path(sys.executable).with_name("openstack")
#: login token lifetime on the expiry test's server: long enough for the checks made
#: before it expires even on a busy machine
TTL_S = 10


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    project: str


def admin_login(server: CofferServer) -> Login:
    data = json.loads((server.data_dir / "credentials.json").read_text())
    return Login(data["username"], data["password"], data["project_name"])


def openstack(
    server: CofferServer, login: Login, *args: str, auth_url: str = "/v3", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(
        LANG="C.UTF-8",
        OS_AUTH_URL=server.url + auth_url,
        OS_USERNAME=login.username,
        OS_PASSWORD=login.password,
        OS_PROJECT_NAME=login.project,
        OS_USER_DOMAIN_NAME="Default",
        OS_PROJECT_DOMAIN_NAME="Default",
    )
    return subprocess.run(
        [str(OPENSTACK), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def ok_json(server: CofferServer, login: Login, *args: str, auth_url: str = "/v3") -> Any:
    res = openstack(server, login, *args, "-f", "json", auth_url=auth_url)
    assert res.returncode == 0, f"openstack {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def auth_body(login: Login, scope: dict[str, Any] | None = None) -> dict[str, Any]:
    user = {"name": login.username, "domain": {"name": "Default"}, "password": login.password}
    body: dict[str, Any] = {
        "auth": {"identity": {"methods": ["password"], "password": {"user": user}}}
    }
    body["auth"]["scope"] = scope or {
        "project": {"name": login.project, "domain": {"name": "Default"}}
    }
    return body


def keystone_error(r: httpx.Response, code: int) -> str:
    assert r.status_code == code, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["title"]
    return str(error["message"])


def new_user(server: CofferServer) -> tuple[Login, Credentials]:
    """A new project and a user of it, made through the admin API."""
    suffix = uuid.uuid4().hex[:8]
    project = f"ks-{suffix}"
    creds = server.new_project(project)
    password = f"pw-{uuid.uuid4().hex}"
    user = {"name": f"user-{suffix}", "password": password, "project": project}
    with server.admin().client() as c:
        r = c.post("/mgmt/users", json={"user": user})
    assert r.status_code == 200, r.text
    made = r.json()["user"]
    assert (made["project_id"], made["is_admin"]) == (creds.project_id, False)
    assert "password" not in made and "password_hash" not in made
    return Login(made["name"], password, project), creds


@pytest.fixture
def tenant(server: CofferServer) -> Iterator[tuple[Login, Credentials]]:
    login, creds = new_user(server)
    try:
        yield login, creds
    finally:
        with creds.client() as c:
            delete_instances(c, names={"ks-own"})


def test_the_openstack_cli_logs_in_with_the_admin_password(server: CofferServer) -> None:
    assert OPENSTACK.exists(), f"{OPENSTACK} is missing: install python-openstackclient"
    login = admin_login(server)
    flavors = ok_json(server, login, "database", "flavor", "list")
    assert {"tiny", "small"} <= {f["Name"] for f in flavors}
    assert isinstance(ok_json(server, login, "database", "instance", "list"), list)
    # project lookup by name goes through the catalog's identity endpoint
    project = ok_json(server, login, "project", "show", login.project)
    assert (project["id"], project["name"]) == (server.admin().project_id, login.project)
    quotas = ok_json(server, login, "database", "quota", "show", login.project)
    assert "instances" in {q["Resource"] for q in quotas}
    # an auth URL without the version: discovery at / lists the identity API too
    flavors = ok_json(server, login, "database", "flavor", "list", auth_url="")
    assert "tiny" in {f["Name"] for f in flavors}


def test_a_wrong_password_or_user_fails_with_a_clear_message(server: CofferServer) -> None:
    login = admin_login(server)
    for bad in (
        Login(login.username, login.password + "x", login.project),
        Login("nobody-" + uuid.uuid4().hex[:6], login.password, login.project),
    ):
        res = openstack(server, bad, "database", "instance", "list")
        assert res.returncode != 0
        assert "wrong user name or password" in res.stderr, res.stderr
        assert "(HTTP 401)" in res.stderr, res.stderr
    with httpx.Client(base_url=server.url, timeout=30) as c:
        wrong = Login(login.username, "not-it", login.project)
        message = keystone_error(c.post("/v3/auth/tokens", json=auth_body(wrong)), 401)
        assert "wrong user name or password" in message
        assert "X-Subject-Token" not in c.post("/v3/auth/tokens", json=auth_body(wrong)).headers
        message = keystone_error(
            c.post("/v3/auth/tokens", json=auth_body(login, {"project": {"name": "nope"}})), 401
        )
        assert "Could not find project" in message


def test_bad_login_bodies_get_keystone_errors(server: CofferServer) -> None:
    login = admin_login(server)
    good = auth_body(login)
    no_user = json.loads(json.dumps(good))
    del no_user["auth"]["identity"]["password"]["user"]["name"]
    extra = json.loads(json.dumps(good))
    extra["auth"]["scope"]["domain"] = {"id": "default"}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert "auth" in keystone_error(c.post("/v3/auth/tokens", json={}), 400)
        assert "id or a name" in keystone_error(c.post("/v3/auth/tokens", json=no_user), 400)
        assert "scope.domain" in keystone_error(c.post("/v3/auth/tokens", json=extra), 400)
        r = c.post(
            "/v3/auth/tokens",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        keystone_error(r, 400)
        token_method = {"auth": {"identity": {"methods": ["token"], "token": {"id": "x"}}}}
        assert "token" in keystone_error(c.post("/v3/auth/tokens", json=token_method), 400)
        only_token = {"auth": {"identity": {"methods": ["token"]}}}
        message = keystone_error(c.post("/v3/auth/tokens", json=only_token), 401)
        assert "unsupported method" in message
        # version discovery, with and without the version in the URL
        v3 = c.get("/v3").json()["version"]
        assert v3["id"].startswith("v3.") and v3["links"][0]["href"] == f"{server.url}/v3/"
        root = c.get("/").json()["versions"]
        assert {"v1.0", v3["id"]} == {v["id"] for v in root}


def test_a_user_of_another_project_sees_only_its_project(
    server: CofferServer, tenant: tuple[Login, Credentials]
) -> None:
    login, creds = tenant
    admin = server.admin()
    created = ok_json(
        server,
        login,
        *("database", "instance", "create", "ks-own", "--flavor", "tiny", "--size", "1"),
        *("--datastore", "postgresql", "--datastore-version", "15"),
    )
    listed = ok_json(server, login, "database", "instance", "list")
    assert [i["ID"] for i in listed] == [created["id"]]
    with admin.client() as c:
        assert created["id"] not in {i["id"] for i in c.get("/instances").json()["instances"]}
    project = ok_json(server, login, "project", "show", login.project)
    assert project["id"] == creds.project_id

    res = openstack(
        server, Login(login.username, login.password, "admin"), "database", "instance", "list"
    )
    assert res.returncode != 0 and "no access to project admin" in res.stderr, res.stderr

    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post("/v3/auth/tokens", json=auth_body(login))
        assert r.status_code == 201, r.text
        token = r.headers["X-Subject-Token"]
        doc = r.json()["token"]
        assert [role["name"] for role in doc["roles"]] == ["member", "reader"]
        headers = {"X-Auth-Token": token}
        assert c.get(f"/v1.0/{admin.project_id}/instances", headers=headers).status_code == 403
        users = {"user": {"name": "x-" + uuid.uuid4().hex[:6], "password": "12345678"}}
        users["user"]["project"] = login.project
        r = c.post(f"/v1.0/{creds.project_id}/mgmt/users", headers=headers, json=users)
        assert r.status_code == 403, r.text
        found = c.get("/v3/projects", params={"name": "admin"}, headers=headers).json()
        assert found["projects"] == []
        assert c.get(f"/v3/projects/{admin.project_id}", headers=headers).status_code == 404


def test_mgmt_users_are_validated_and_change_nothing_when_refused(server: CofferServer) -> None:
    login, _ = new_user(server)
    with server.admin().client() as c:

        def refused(user: dict[str, Any], code: int) -> str:
            r = c.post("/mgmt/users", json={"user": user})
            assert r.status_code == code, r.text
            return str(next(iter(r.json().values()))["message"])

        ok = {
            "name": "fresh-" + uuid.uuid4().hex[:6],
            "password": "long-enough",
            "project": "admin",
        }
        assert "already exists" in refused({**ok, "name": login.username}, 400)
        assert "user name must be" in refused({**ok, "name": "bad name"}, 400)
        assert "password" in refused({**ok, "password": "short"}, 400)
        assert "not found" in refused({**ok, "project": "no-such-project"}, 404)
        assert "role" in refused({**ok, "role": "admin"}, 400)
        names = {u["name"] for u in c.get("/mgmt/users").json()["users"]}
        assert login.username in names and ok["name"] not in names
        # a user of the admin project is an admin
        r = c.post("/mgmt/users", json={"user": ok})
        assert r.status_code == 200 and r.json()["user"]["is_admin"] is True, r.text
    admin_user = Login(ok["name"], ok["password"], "admin")
    assert isinstance(ok_json(server, admin_user, "database", "instance", "list"), list)


def _files_containing(root: Path, needles: list[bytes], skip: set[Path]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.suffix != ".img" and path not in skip:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            hits.extend(f"{path}: {n.decode()}" for n in needles if n in data)
    return hits


def _postgres_rows_containing(url: str, needles: list[str]) -> list[str]:
    hits = []
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        for (table,) in tables:
            for (row,) in conn.execute(f'SELECT t::text FROM "{table}" t'):
                hits.extend(f"{table}: {n}" for n in needles if n in row)
    return hits


def test_tokens_validate_revoke_expire_and_passwords_stay_hidden(
    fresh_server: CofferServer,
) -> None:
    fresh_server.env["COFFER_KEYSTONE_TOKEN_TTL_S"] = str(TTL_S)
    server = fresh_server.start()
    admin = admin_login(server)
    login, creds = new_user(server)
    wrong = "wrong-" + uuid.uuid4().hex
    with httpx.Client(base_url=server.url, timeout=30) as c:
        bad = Login(login.username, wrong, login.project)
        keystone_error(c.post("/v3/auth/tokens", json=auth_body(bad)), 401)
        issued = c.post("/v3/auth/tokens", json=auth_body(login))
        assert issued.status_code == 201, issued.text
        token = issued.headers["X-Subject-Token"]
        doc = issued.json()["token"]
        expires = datetime.strptime(doc["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        issued_at = datetime.strptime(doc["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert (expires - issued_at).total_seconds() == TTL_S
        assert doc["project"]["id"] == creds.project_id and doc["user"]["name"] == login.username
        (database,) = [s for s in doc["catalog"] if s["type"] == "database"]
        assert {e["url"] for e in database["endpoints"]} == {
            f"{server.url}/v1.0/{creds.project_id}"
        }
        own = {"X-Auth-Token": token, "X-Subject-Token": token}
        shown = c.get("/v3/auth/tokens", headers=own)
        assert shown.status_code == 200 and shown.json() == issued.json()
        assert shown.headers["X-Subject-Token"] == token
        assert c.head("/v3/auth/tokens", headers=own).status_code == 200
        missing = keystone_error(c.get("/v3/auth/tokens", headers={"X-Auth-Token": token}), 400)
        assert "X-Subject-Token" in missing
        api = {"X-Auth-Token": token}
        assert c.get(f"/v1.0/{creds.project_id}/instances", headers=api).status_code == 200

        # revocation: the token stops working at once, everywhere
        second = c.post("/v3/auth/tokens", json=auth_body(login)).headers["X-Subject-Token"]
        other = {"X-Auth-Token": token, "X-Subject-Token": second}
        assert "not authorized" in keystone_error(c.get("/v3/auth/tokens", headers=other), 403)
        mine = {"X-Auth-Token": second, "X-Subject-Token": second}
        assert c.delete("/v3/auth/tokens", headers=mine).status_code == 204
        r = c.get(f"/v1.0/{creds.project_id}/instances", headers={"X-Auth-Token": second})
        assert r.status_code == 401
        keystone_error(c.get("/v3/auth/tokens", headers=own | {"X-Subject-Token": second}), 404)
        keystone_error(c.get("/v3/auth/tokens", headers={"X-Subject-Token": token}), 401)

        # expiry: refused by the API and by validation once expires_at has passed
        time.sleep(max(0.0, (expires - datetime.now(UTC).replace(tzinfo=None)).total_seconds()))
        time.sleep(0.2)
        r = c.get(f"/v1.0/{creds.project_id}/instances", headers=api)
        assert r.status_code == 401 and "expired" in r.text, r.text
        keystone_error(c.get("/v3/auth/tokens", headers=own), 401)
        admin_api = {"X-Auth-Token": server.admin().token, "X-Subject-Token": token}
        assert "expired" in keystone_error(c.get("/v3/auth/tokens", headers=admin_api), 404)

    # a restart keeps the admin's password
    server.stop(remove=False)
    server.start()
    assert admin_login(server) == admin
    assert isinstance(ok_json(server, admin, "database", "flavor", "list"), list)

    needles = [login.password, admin.password, wrong]
    skip = {server.data_dir / "credentials.json"}
    assert _files_containing(server.data_dir, [n.encode() for n in needles], skip) == []
    url = server.env.get("COFFER_DATABASE_URL")
    if url:
        assert _postgres_rows_containing(url, needles) == []
