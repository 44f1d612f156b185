"""No password given to Coffer is ever written anywhere in plain text."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.support.api import create_body, wait_gone, wait_instance
from tests.support.processes import CofferServer

pytestmark = pytest.mark.integration


def files_containing(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        # loop images (sparse, up to hundreds of GB) are read through their mount points
        if path.is_file() and not path.is_symlink() and path.suffix != ".img":
            try:
                data = path.read_bytes()
            except OSError:
                continue
            hits.extend(f"{path}: {n.decode()}" for n in needles if n in data)
    return hits


def test_passwords_never_reach_logs_or_metadata(fresh_server: CofferServer) -> None:
    server = fresh_server.start()
    pw = {k: f"{k}-{secrets.token_hex(8)}" for k in ("create", "user", "changed", "bulk", "root")}
    body = create_body("secretive")
    body["instance"]["users"][0]["password"] = pw["create"]
    with server.admin().client() as c:
        iid = c.post("/instances", json=body).json()["instance"]["id"]
        wait_instance(c, iid)
        user = {"users": [{"name": "bob", "password": pw["user"], "databases": [{"name": "shop"}]}]}
        assert c.post(f"/instances/{iid}/users", json=user).status_code == 202
        assert (
            c.put(
                f"/instances/{iid}/users/bob", json={"user": {"password": pw["changed"]}}
            ).status_code
            == 202
        )
        bulk = {"users": [{"name": "app", "password": pw["bulk"]}]}
        assert c.put(f"/instances/{iid}/users", json=bulk).status_code == 202
        assert c.post(f"/instances/{iid}/root", json={"password": pw["root"]}).status_code == 200
        generated = c.post(f"/instances/{iid}/root").json()["user"]["password"]
        # a failing request that carries a password must not leak it either
        bad = {"users": [{"name": "bob", "password": pw["user"]}]}
        assert c.post(f"/instances/{iid}/users", json=bad).status_code == 400
        assert c.post(f"/instances/{iid}/action", json={"restart": {}}).status_code == 202
        wait_instance(c, iid)
        needles = [v.encode() for v in [*pw.values(), generated]]
        assert files_containing(server.data_dir, needles) == []
        assert c.delete(f"/instances/{iid}").status_code == 202
        wait_gone(c, iid)
    server.stop(remove=False)
    assert files_containing(server.data_dir, needles) == []
