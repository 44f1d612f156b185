"""python-troveclient, the library OpenStack tools use, driving a real server and real engines.

The client is built exactly as §2.2 of the reference prescribes (keystoneauth1 session with a
static token and a fixed endpoint); no request is mocked. Every result the client reports is
checked against the PostgreSQL engine itself where the engine can tell.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from keystoneauth1 import session, token_endpoint
from troveclient.apiclient import exceptions
from troveclient.v1 import client

from tests.support.api import delete_instances
from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration

APP_PASSWORD = "app-secret-1"


def trove_client(creds: Credentials) -> client.Client:
    auth = token_endpoint.Token(creds.endpoint, creds.token)
    return client.Client(session=session.Session(auth=auth))


@pytest.fixture
def trove(admin: Credentials) -> client.Client:
    return trove_client(admin)


@pytest.fixture
def created(admin: Credentials) -> Iterator[list[str]]:
    """Ids of the instances a test creates; those still present at teardown are deleted."""
    ids: list[str] = []
    try:
        yield ids
    finally:
        with admin.client() as c:
            delete_instances(c, ids=ids)


def create_instance(trove: client.Client, created: list[str], name: str) -> Any:
    inst = trove.instances.create(
        name,
        flavor_id=flavor_id(trove, "tiny"),
        volume={"size": 1},
        databases=[{"name": "shop"}],
        users=[{"name": "app", "password": APP_PASSWORD, "databases": [{"name": "shop"}]}],
        datastore="postgresql",
        datastore_version="15",
    )
    created.append(inst.id)
    assert inst.name == name
    assert inst.status == "BUILD"
    return inst


def flavor_id(trove: client.Client, name: str) -> int:
    (flavor,) = [f for f in trove.flavors.list() if f.name == name]
    return int(flavor.id)


def wait_active(trove: client.Client, iid: str, timeout: float = 120) -> Any:
    """Poll ``instances.get`` as a client would, until ACTIVE with a HEALTHY engine."""
    end = time.monotonic() + timeout
    inst = None
    while time.monotonic() < end:
        inst = trove.instances.get(iid)
        if inst.status == "ERROR":
            raise AssertionError(f"instance {iid} went to ERROR: {getattr(inst, 'fault', None)}")
        if inst.status == "ACTIVE" and inst.operating_status == "HEALTHY":
            return inst
        time.sleep(0.1)
    raise AssertionError(f"instance {iid} not ACTIVE/HEALTHY in {timeout}s; last: {inst!r}")


def wait_not_found(trove: client.Client, iid: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            trove.instances.get(iid)
        except exceptions.NotFound:
            return
        time.sleep(0.1)
    raise AssertionError(f"instance {iid} still exists after {timeout}s")


def connect(
    inst: Any, user: str = "app", password: str = APP_PASSWORD, db: str = "shop"
) -> psycopg.Connection:
    return psycopg.connect(
        host=inst.ip[0],
        port=inst.port,
        user=user,
        password=password,
        dbname=db,
        connect_timeout=5,
        autocommit=True,
    )


def scalar(conn: psycopg.Connection, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_catalog(trove: client.Client) -> None:
    flavors = {f.name: f for f in trove.flavors.list()}
    assert {"tiny", "medium"} <= set(flavors)
    tiny = trove.flavors.get(flavors["tiny"].id)
    assert (tiny.name, tiny.ram) == ("tiny", flavors["tiny"].ram)

    (datastore,) = [d for d in trove.datastores.list() if d.name == "postgresql"]
    postgresql = trove.datastores.get("postgresql")
    assert postgresql.id == datastore.id
    versions = {v["name"]: v["id"] for v in postgresql.versions}
    assert "15" in versions
    assert postgresql.default_version in versions.values()

    assert "15" in [v.name for v in trove.datastore_versions.list("postgresql")]
    version = trove.datastore_versions.get("postgresql", "15")
    assert (version.id, version.name, version.datastore) == (versions["15"], "15", datastore.id)

    absolute, *rates = trove.limits.list()
    assert absolute.verb == "ABSOLUTE"
    assert absolute.max_instances >= 1
    assert all(r.unit == "MINUTE" for r in rates)


def test_errors_arrive_as_client_exceptions(trove: client.Client) -> None:
    with pytest.raises(exceptions.NotFound):
        trove.instances.get("no-such-instance")
    with pytest.raises(exceptions.NotFound):
        trove.datastores.get("no-such-datastore")
    with pytest.raises(exceptions.BadRequest, match="99"):
        trove.instances.create(
            "tc-bad-flavor",
            flavor_id=99,
            volume={"size": 1},
            datastore="postgresql",
            datastore_version="15",
        )
    assert "tc-bad-flavor" not in [i.name for i in trove.instances.list()]


def test_instance_lifecycle(trove: client.Client, created: list[str]) -> None:
    iid = create_instance(trove, created, "tc-life").id
    inst = wait_active(trove, iid)
    assert inst.datastore["type"] == "postgresql"
    assert inst.datastore["version"] == "15"
    assert inst.flavor["id"] == str(flavor_id(trove, "tiny"))
    assert inst.volume["size"] == 1
    assert iid in [i.id for i in trove.instances.list()]

    with connect(inst) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two')")
        started = scalar(conn, "SELECT pg_postmaster_start_time()")
        shared_buffers = scalar(conn, "SHOW shared_buffers")

    trove.instances.restart(iid)
    inst = wait_active(trove, iid)
    with connect(inst) as conn:
        assert scalar(conn, "SELECT pg_postmaster_start_time()") > started
        assert scalar(conn, "SELECT count(*) FROM items") == 2

    trove.instances.resize_instance(iid, flavor_id(trove, "medium"))
    inst = wait_active(trove, iid)
    assert inst.flavor["id"] == str(flavor_id(trove, "medium"))
    with connect(inst) as conn:
        assert scalar(conn, "SHOW shared_buffers") != shared_buffers
        assert scalar(conn, "SELECT name FROM items WHERE id = 2") == "two"

    trove.instances.resize_volume(iid, 2)
    inst = wait_active(trove, iid)
    assert inst.volume["size"] == 2

    trove.instances.update(iid, name="tc-life-renamed")
    assert trove.instances.get(iid).name == "tc-life-renamed"

    trove.instances.delete(iid)
    wait_not_found(trove, iid)
    with pytest.raises(exceptions.NotFound):
        trove.instances.get(iid)
    assert iid not in [i.id for i in trove.instances.list()]


def test_databases_users_and_root(trove: client.Client, created: list[str]) -> None:
    iid = create_instance(trove, created, "tc-accounts").id
    inst = wait_active(trove, iid)

    trove.databases.create(iid, [{"name": "extra"}])
    assert {d.name for d in trove.databases.list(iid)} == {"shop", "extra"}
    with pytest.raises(exceptions.BadRequest):
        trove.databases.create(iid, [{"name": "extra"}])

    trove.users.create(
        iid, [{"name": "bob", "password": "bob-pw-1", "databases": [{"name": "extra"}]}]
    )
    users = {u.name: u for u in trove.users.list(iid)}
    assert set(users) == {"app", "bob"}
    assert users["bob"].databases == [{"name": "extra"}]
    bob = trove.users.get(iid, "bob")
    assert (bob.name, bob.host, bob.databases) == ("bob", "%", [{"name": "extra"}])
    with connect(inst, user="bob", password="bob-pw-1", db="extra") as conn:
        conn.execute("CREATE TABLE t (x int)")

    trove.users.grant(iid, "bob", ["shop"])
    assert {d.name for d in trove.users.list_access(iid, "bob")} == {"shop", "extra"}
    with connect(inst, user="bob", password="bob-pw-1", db="shop") as conn:
        assert scalar(conn, "SELECT current_database()") == "shop"
    trove.users.revoke(iid, "bob", "shop")
    assert {d.name for d in trove.users.list_access(iid, "bob")} == {"extra"}

    trove.users.update_attributes(iid, "bob", {"password": "bob-pw-2"})
    with connect(inst, user="bob", password="bob-pw-2", db="extra") as conn:
        assert scalar(conn, "SELECT count(*) FROM t") == 0
    with pytest.raises(psycopg.OperationalError):
        connect(inst, user="bob", password="bob-pw-1", db="extra")

    assert trove.root.is_root_enabled(iid).rootEnabled is False
    name, password = trove.root.create(iid)
    assert name == "root" and password
    with connect(inst, user="root", password=password, db="postgres") as conn:
        assert scalar(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is True
    assert trove.root.is_root_enabled(iid).rootEnabled is True
    trove.root.delete(iid)
    assert trove.root.is_root_enabled(iid).rootEnabled is False
    with pytest.raises(psycopg.OperationalError):
        connect(inst, user="root", password=password, db="postgres")

    trove.users.delete(iid, "bob")
    with pytest.raises(exceptions.NotFound):
        trove.users.get(iid, "bob")
    assert [u.name for u in trove.users.list(iid)] == ["app"]
    trove.databases.delete(iid, "extra")
    assert [d.name for d in trove.databases.list(iid)] == ["shop"]
    with connect(inst) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
        assert "shop" in names and "extra" not in names

    trove.instances.delete(iid)
    wait_not_found(trove, iid)


def test_quotas(server: CofferServer, trove: client.Client) -> None:
    project = server.new_project("tc-quota")
    quotas = {q.resource: q for q in trove.quota.show(project.project_id)}
    assert {"instances", "volumes", "backups"} <= set(quotas)
    assert quotas["instances"].in_use == 0

    assert trove.quota.update(project.project_id, {"instances": 0}) == {"instances": 0}
    assert {q.resource: q.limit for q in trove.quota.show(project.project_id)}["instances"] == 0

    tenant = trove_client(project)
    assert tenant.limits.list()[0].max_instances == 0
    assert {q.resource: q.limit for q in tenant.quota.show(project.project_id)}["instances"] == 0
    try:
        with pytest.raises(exceptions.RequestEntityTooLarge, match=r"(?i)quota"):
            tenant.instances.create(
                "tc-over-quota",
                flavor_id=flavor_id(tenant, "tiny"),
                volume={"size": 1},
                datastore="postgresql",
                datastore_version="15",
            )
        assert tenant.instances.list() == []
    finally:
        with project.client() as c:
            delete_instances(c, names={"tc-over-quota"})
