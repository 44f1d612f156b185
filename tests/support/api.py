"""Helpers for driving Coffer's REST API in tests."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import httpx


def create_body(name: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "flavorRef": "tiny",
        "volume": {"size": 1},
        "datastore": {"type": "postgresql", "version": "15"},
        "databases": [{"name": "shop"}],
        "users": [{"name": "app", "password": "app-secret-1", "databases": [{"name": "shop"}]}],
    }
    body.update(over)
    return {"instance": body}


def wait_instance(
    c: httpx.Client,
    iid: str,
    *,
    status: str = "ACTIVE",
    operating: str | None = "HEALTHY",
    timeout: float = 120,
) -> dict[str, Any]:
    end = time.monotonic() + timeout
    inst: dict[str, Any] = {}
    while time.monotonic() < end:
        r = c.get(f"/instances/{iid}")
        assert r.status_code == 200, r.text
        inst = r.json()["instance"]
        if inst["status"] == "ERROR" and status != "ERROR":
            raise AssertionError(f"instance went to ERROR: {inst.get('fault')}")
        if inst["status"] == status and (
            operating is None or inst["operating_status"] == operating
        ):
            return inst
        time.sleep(0.1)
    raise AssertionError(f"instance {iid} not {status}/{operating} in {timeout}s; last: {inst}")


def wait_gone(c: httpx.Client, iid: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if c.get(f"/instances/{iid}").status_code == 404:
            return
        time.sleep(0.1)
    raise AssertionError(f"instance {iid} still exists after {timeout}s")


def create_ready(c: httpx.Client, name: str, **over: Any) -> dict[str, Any]:
    r = c.post("/instances", json=create_body(name, **over))
    assert r.status_code == 200, r.text
    return wait_instance(c, r.json()["instance"]["id"])


def fault(r: httpx.Response) -> tuple[str, int, str]:
    """(fault name, code, message) of a Trove error envelope; fails if it is not one."""
    body = r.json()
    assert isinstance(body, dict) and len(body) == 1, body
    ((name, inner),) = body.items()
    assert set(inner) >= {"code", "message"}, body
    assert inner["code"] == r.status_code
    assert inner["message"], body
    return name, inner["code"], inner["message"]


def delete_instances(
    c: httpx.Client, *, ids: Iterable[str] = (), names: Iterable[str] = (), timeout: float = 120
) -> None:
    """Teardown safety net: delete this project's instances that have one of these ids or names,
    then wait until they are gone. Retries while an instance is busy or still has replicas;
    idempotent."""
    ids, names = set(ids), set(names)
    listed = c.get("/instances")
    assert listed.status_code == 200, listed.text
    doomed = {i["id"] for i in listed.json()["instances"] if i["id"] in ids or i["name"] in names}
    doomed |= {iid for iid in ids if c.get(f"/instances/{iid}").status_code != 404}
    end = time.monotonic() + timeout
    # in rounds: a source is refused (403) until its replicas are gone, busy ones (422)
    # until their task ends
    pending = set(doomed)
    while pending and time.monotonic() < end:
        for iid in sorted(pending):
            if c.delete(f"/instances/{iid}").status_code in (202, 404):
                pending.discard(iid)
        if pending:
            time.sleep(0.2)
    for iid in doomed:
        wait_gone(c, iid, timeout=max(1.0, end - time.monotonic()))


def flavor_id(c: httpx.Client, name: str) -> str:
    """The id of the flavor called ``name``."""
    r = c.get("/flavors")
    assert r.status_code == 200, r.text
    (fid,) = [str(f["id"]) for f in r.json()["flavors"] if f["name"] == name]
    return fid


def delete_configurations(
    c: httpx.Client, *, ids: Iterable[str] = (), names: Iterable[str] = ()
) -> None:
    """Teardown safety net: delete this project's configuration groups that have one of these
    ids or names (detach them first: attached groups are refused). Idempotent."""
    ids, names = set(ids), set(names)
    listed = c.get("/configurations")
    assert listed.status_code == 200, listed.text
    doomed = {
        g["id"] for g in listed.json()["configurations"] if g["id"] in ids or g["name"] in names
    }
    for cid in doomed:
        r = c.delete(f"/configurations/{cid}")
        assert r.status_code in (202, 404), r.text
