"""Instant clones through the API, for every engine: ``restorePoint`` ``{"instanceRef"}``
gives a new instance with the source's data as of the clone, independent from then on
(writes to either stay there); bad requests change nothing."""

from __future__ import annotations

import pytest

from tests.support.api import delete_instances, fault, wait_instance
from tests.support.backups import ENGINES, restore_point, rows
from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_clone_is_an_independent_copy(server: CofferServer, admin: Credentials, name: str) -> None:
    engine = ENGINES[name]
    made: list[str] = []
    with admin.client() as c:
        try:
            src = wait_instance(
                c, c.post("/instances", json=engine.body(f"cl-src-{name}")).json()["instance"]["id"]
            )
            made.append(src["id"])
            engine.write(src, rows(1, 40))
            at_clone = engine.contents(src)

            clone = restore_point(c, engine, f"cl-{name}", {"instanceRef": src["id"]})
            made.append(clone["id"])
            assert clone["port"] != src["port"]
            assert engine.contents(clone) == at_clone

            engine.write(src, rows(100, 3))
            engine.write(clone, rows(200, 2))
            cloned, source = engine.contents(clone), engine.contents(src)
            assert all(item in cloned for item in at_clone)
            assert all(item in source for item in at_clone)
            only_clone = [item for item in cloned if item not in at_clone]
            only_source = [item for item in source if item not in at_clone]
            assert only_clone and only_source, "each took its own writes"
            assert not any(item in source for item in only_clone)
            assert not any(item in cloned for item in only_source)
            assert "replica_of" not in c.get(f"/instances/{clone['id']}").json()["instance"]
        finally:
            delete_instances(c, ids=made)


def test_bad_clone_requests_change_nothing(server: CofferServer, admin: Credentials) -> None:
    engine = ENGINES["redis"]
    other = server.new_project("cl-other")
    made: list[str] = []
    with admin.client() as c, other.client() as o:
        try:
            body = engine.body("cl-bad-src")
            body["instance"]["volume"] = {"size": 2}
            src = wait_instance(c, c.post("/instances", json=body).json()["instance"]["id"])
            made.append(src["id"])
            count = len(c.get("/instances").json()["instances"])
            small = engine.body("cl-small")
            small["instance"]["restorePoint"] = {"instanceRef": src["id"]}
            r = c.post("/instances", json=small)
            assert r.status_code == 400 and "smaller" in fault(r)[2], r.text
            stolen = engine.body("cl-stolen")
            stolen["instance"]["restorePoint"] = {"instanceRef": src["id"]}
            stolen["instance"]["volume"] = {"size": 2}
            assert o.post("/instances", json=stolen).status_code == 404
            assert len(c.get("/instances").json()["instances"]) == count
        finally:
            delete_instances(c, ids=made)
