"""Password logins on a real (SQLite) metadata database, migrated and bootstrapped as the
server does it: the admin's login in credentials.json, users, tokens and their expiry."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coffer.api import keystone_views
from coffer.clock import utcnow
from coffer.contracts.identity import AuthRequest
from coffer.errors import BadRequest, Forbidden, NotFound, Unauthorized
from coffer.server import build_runtime
from coffer.services import auth, bootstrap, identity, projects
from coffer.services.runtime import Runtime
from coffer.settings import ServerSettings

TTL_S = 1.0


@pytest.fixture(scope="module")
def data_dir(request: pytest.FixtureRequest) -> Path:
    path = Path(tempfile.mkdtemp(prefix="cf-id-"))
    request.addfinalizer(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


@pytest.fixture(scope="module")
def rt(data_dir: Path) -> Iterator[Runtime]:
    runtime = build_runtime(ServerSettings(data_dir=data_dir, keystone_token_ttl_s=TTL_S))
    bootstrap.seed(runtime)
    bootstrap.ensure_admin_credentials(runtime)
    yield runtime
    runtime.sessions.kw["bind"].dispose()


def creds(rt: Runtime) -> dict[str, str]:
    data: dict[str, str] = json.loads((rt.settings.data_dir / "credentials.json").read_text())
    return data


def member(rt: Runtime, password: str = "member-pass-1") -> identity.UserView:
    """A new user in a new project (tests share the database and may run in any order)."""
    suffix = uuid.uuid4().hex[:8]
    projects.create_project(rt, f"p-{suffix}")
    return identity.create_user(rt, name=f"u-{suffix}", password=password, project=f"p-{suffix}")


def body(user: str, password: str, project: dict[str, Any] | None = None) -> AuthRequest:
    auth_: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {"name": user, "domain": {"name": "Default"}, "password": password}
            },
        }
    }
    if project is not None:
        auth_["scope"] = {"project": project}
    return AuthRequest.model_validate({"auth": auth_})


def test_first_start_writes_the_admin_login_beside_the_token(rt: Runtime) -> None:
    c = creds(rt)
    assert {"endpoint", "project_id", "token"} <= c.keys()
    assert c["username"] == "admin" and c["project_name"] == "admin"
    assert c["auth_url"] == f"{rt.settings.base_url}/v3"
    assert len(c["password"]) >= 16
    assert (rt.settings.data_dir / "credentials.json").stat().st_mode & 0o777 == 0o600
    token, grant = identity.login(rt, body("admin", c["password"], {"name": "admin"}))
    assert grant.project_id == c["project_id"] and grant.is_admin
    who = auth.authenticate(rt, token)
    assert who.project_id == c["project_id"] and who.is_admin


def test_a_restart_keeps_the_password_and_other_keys(rt: Runtime) -> None:
    path = rt.settings.data_dir / "credentials.json"
    before = creds(rt)
    path.write_text(json.dumps({**before, "note": "mine"}))
    bootstrap.ensure_admin_credentials(rt)
    after = creds(rt)
    assert after == {**before, "note": "mine"}


def test_a_lost_password_is_replaced_and_the_old_one_stops_working(rt: Runtime) -> None:
    path = rt.settings.data_dir / "credentials.json"
    before = creds(rt)
    path.write_text(json.dumps({**before, "password": "guessed-wrong"}))
    bootstrap.ensure_admin_credentials(rt)
    after = creds(rt)
    assert after["password"] not in (before["password"], "guessed-wrong")
    assert after["token"] == before["token"]
    with pytest.raises(Unauthorized):
        identity.login(rt, body("admin", before["password"]))
    identity.login(rt, body("admin", after["password"]))


def test_wrong_password_and_unknown_user_are_refused_alike(rt: Runtime) -> None:
    with pytest.raises(Unauthorized) as wrong:
        identity.login(rt, body("admin", "not-the-password"))
    with pytest.raises(Unauthorized) as unknown:
        identity.login(rt, body("nobody", "not-the-password"))
    assert wrong.value.message == unknown.value.message
    assert "wrong user name or password" in wrong.value.message
    with pytest.raises(Unauthorized, match="user name or password"):
        identity.login(rt, body("admin", creds(rt)["password"].upper() + "x"))


def test_other_domains_and_methods_are_refused(rt: Runtime) -> None:
    password = creds(rt)["password"]
    other = AuthRequest.model_validate(
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "admin",
                            "domain": {"id": "elsewhere"},
                            "password": password,
                        }
                    },
                }
            }
        }
    )
    with pytest.raises(Unauthorized):
        identity.login(rt, other)
    token_method = AuthRequest.model_validate({"auth": {"identity": {"methods": ["token"]}}})
    with pytest.raises(Unauthorized, match="unsupported method"):
        identity.login(rt, token_method)
    no_section = AuthRequest.model_validate({"auth": {"identity": {"methods": ["password"]}}})
    with pytest.raises(BadRequest, match="password"):
        identity.login(rt, no_section)
    with pytest.raises(Unauthorized, match="Could not find project"):
        identity.login(rt, body("admin", password, {"name": "admin", "domain": {"id": "x"}}))


def test_users_are_validated_and_belong_to_one_project(rt: Runtime) -> None:
    shop = projects.create_project(rt, "shop")
    user = identity.create_user(rt, name="alice", password="alice-pass-1", project="shop")
    assert (user.project_id, user.project_name, user.is_admin) == (shop.project_id, "shop", False)
    with pytest.raises(BadRequest, match="already exists"):
        identity.create_user(rt, name="alice", password="another-pass", project=shop.project_id)
    with pytest.raises(BadRequest, match="user name must be"):
        identity.create_user(rt, name="-bad name", password="alice-pass-1", project="shop")
    with pytest.raises(NotFound, match="nowhere"):
        identity.create_user(rt, name="bob", password="bob-pass-12", project="nowhere")
    assert {"admin", "alice"} <= {u.name for u in identity.list_users(rt)}
    assert "bob" not in {u.name for u in identity.list_users(rt)}

    token, grant = identity.login(rt, body("alice", "alice-pass-1"))  # unscoped: own project
    assert grant.project_id == shop.project_id and not grant.is_admin
    who = auth.authenticate(rt, token)
    assert (who.project_id, who.is_admin) == (shop.project_id, False)
    by_id = identity.login(rt, body("alice", "alice-pass-1", {"id": shop.project_id}))[1]
    assert by_id.project_id == shop.project_id
    with pytest.raises(Unauthorized, match="no access to project admin"):
        identity.login(rt, body("alice", "alice-pass-1", {"name": "admin"}))
    with pytest.raises(Unauthorized, match="Could not find project"):
        identity.login(rt, body("alice", "alice-pass-1", {"name": "nope"}))
    assert [p.name for p in identity.list_projects(rt, who)] == ["shop"]
    assert identity.list_projects(rt, who, "admin") == []
    with pytest.raises(NotFound):
        identity.get_project(rt, who, creds(rt)["project_id"])


def test_users_of_the_admin_project_are_admins(rt: Runtime) -> None:
    admin_user = identity.create_user(rt, name="ops", password="ops-pass-12", project="admin")
    assert admin_user.is_admin
    token, grant = identity.login(rt, body("ops", "ops-pass-12"))
    assert grant.is_admin and auth.authenticate(rt, token).is_admin
    outsider = member(rt)
    admin = auth.authenticate(rt, creds(rt)["token"])
    assert {"admin", outsider.project_name} <= {p.name for p in identity.list_projects(rt, admin)}
    assert identity.get_project(rt, admin, outsider.project_id).name == outsider.project_name
    # an admin logs in to its own project only; its role reaches the others' resources
    with pytest.raises(Unauthorized, match="no access"):
        identity.login(rt, body("ops", "ops-pass-12", {"name": outsider.project_name}))


def test_passwords_are_stored_hashed_only(rt: Runtime) -> None:
    identity.create_user(rt, name="carol", password="carol-plain-secret", project="admin")
    for path in rt.settings.data_dir.glob("coffer.db*"):
        assert b"carol-plain-secret" not in path.read_bytes()
        assert creds(rt)["password"].encode() not in path.read_bytes()


def test_tokens_are_validated_revoked_and_expire(rt: Runtime) -> None:
    dave, erin = member(rt), member(rt)
    token, grant = identity.login(rt, body(dave.name, "member-pass-1"))
    other, _ = identity.login(rt, body(erin.name, "member-pass-1"))
    assert (grant.expires_at - grant.issued_at).total_seconds() == TTL_S
    who = auth.authenticate(rt, token)
    assert identity.validate(rt, who, token, token) == grant
    with pytest.raises(Forbidden):
        identity.validate(rt, who, token, other)
    admin_token = creds(rt)["token"]
    admin = auth.authenticate(rt, admin_token)
    assert identity.validate(rt, admin, admin_token, token).user_name == dave.name
    with pytest.raises(BadRequest, match="X-Subject-Token"):
        identity.validate(rt, admin, admin_token, None)
    with pytest.raises(NotFound):
        identity.validate(rt, admin, admin_token, admin_token)  # not a login token

    identity.revoke(rt, auth.authenticate(rt, other), other, other)
    with pytest.raises(Unauthorized, match="not valid"):
        auth.authenticate(rt, other)

    time.sleep(max(0.0, (grant.expires_at - utcnow()).total_seconds()) + 0.05)
    with pytest.raises(Unauthorized, match="expired"):
        auth.authenticate(rt, token)
    with pytest.raises(NotFound):
        identity.validate(rt, admin, admin_token, token)
    auth.authenticate(rt, admin_token)  # API tokens do not expire


def test_the_token_document_carries_the_catalog(rt: Runtime) -> None:
    _, grant = identity.login(rt, body(member(rt).name, "member-pass-1"))
    doc = keystone_views.token("http://h:1", grant)["token"]
    assert doc["expires_at"].endswith("Z") and doc["methods"] == ["password"]
    assert [r["name"] for r in doc["roles"]] == ["member", "reader"]
    services = {s["type"]: s for s in doc["catalog"]}
    database = services["database"]["endpoints"]
    assert {e["interface"] for e in database} == {"public", "internal", "admin"}
    assert {e["url"] for e in database} == {f"http://h:1/v1.0/{grant.project_id}"}
    assert {e["region_id"] for e in database} == {"RegionOne"}
    assert {e["url"] for e in services["identity"]["endpoints"]} == {"http://h:1/v3"}
