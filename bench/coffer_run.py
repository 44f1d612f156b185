"""A benchmark's own Coffer server and scratch directory, torn down whatever happens."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.support.api import create_body
from tests.support.processes import (
    CofferServer,
    Credentials,
    kill_everything_under,
    short_tmpdir,
)

__all__ = [
    "DATABASE",
    "PASSWORD",
    "USER",
    "BenchRun",
    "bench_run",
    "delete_instances",
    "instance_body",
    "tear_down",
    "wait_active",
]

#: the user (and, where the datastore has databases, the database) every bench creates
USER, PASSWORD, DATABASE = "app", "bench-secret-1", "shop"


@dataclass
class BenchRun:
    """A started Coffer ``server``, a ``scratch`` dir (0755, under /tmp) for bare
    engines, and ``created``: ids of instances to delete at the end (append at once)."""

    server: CofferServer
    scratch: Path
    created: list[str] = field(default_factory=list)


@contextmanager
def bench_run(
    *, keep_server_data: bool = False, server_env: Mapping[str, str] | None = None
) -> Iterator[BenchRun]:
    """Start a Coffer server (with ``server_env`` added to its environment); at exit (also
    on errors and Ctrl-C) delete the instances in ``created``, stop the server and kill
    and remove everything under ``scratch``."""
    run = BenchRun(server=CofferServer(env=dict(server_env or {})), scratch=short_tmpdir("bench-"))
    try:
        run.server.start()
        yield run
    finally:
        try:
            tear_down(run.server, run.created, keep=keep_server_data)
        finally:
            kill_everything_under(run.scratch)
            shutil.rmtree(run.scratch, ignore_errors=True)


def delete_instances(creds: Credentials, ids: Sequence[str], *, timeout: float = 60) -> list[str]:
    """Ask for every deletion (again while one is refused as busy, e.g. still building),
    until all are gone or ``timeout`` passes; the ids still present at the end. Never
    raises for a stuck instance."""
    end = time.monotonic() + timeout
    with creds.client(timeout=10) as c:
        unasked, remaining = list(ids), list(ids)
        while remaining and time.monotonic() < end:
            unasked = [iid for iid in unasked if not _ask_delete(c, iid)]
            remaining = [iid for iid in remaining if c.get(f"/instances/{iid}").status_code != 404]
            time.sleep(0.2)
    return remaining


def _ask_delete(c: httpx.Client, iid: str) -> bool:
    """True once the deletion is accepted (or moot); False while refused as busy."""
    r = c.delete(f"/instances/{iid}")
    if r.status_code in (409, 422):
        return False
    if r.status_code not in (202, 204, 404):
        print(f"warning: DELETE {iid} answered {r.status_code}: {r.text}", file=sys.stderr)
    return True


def _delete_and_report(creds: Credentials, ids: Sequence[str]) -> None:
    start = time.monotonic()
    try:
        stuck = delete_instances(creds, ids)
    except httpx.HTTPError as exc:  # e.g. Ctrl-C reached the server too and it is stopping
        print(f"warning: deleting instances failed: {exc!r}", file=sys.stderr)
        return
    took = time.monotonic() - start
    print(f"Deleted {len(ids) - len(stuck)} of {len(ids)} instance(s) in {took:.2f} s")
    if stuck:
        print(f"warning: still present after the wait: {', '.join(stuck)}", file=sys.stderr)


def tear_down(server: CofferServer, ids: Sequence[str], *, keep: bool) -> None:
    """Delete ``ids`` through the API if the server still runs, then stop the server
    (which kills whatever is left under its data dir); keep that dir if ``keep``."""
    try:
        if ids and server.proc is not None and server.proc.poll() is None:
            _delete_and_report(server.admin(), ids)
    finally:
        server.stop(remove=not keep)
        if keep:
            print(f"Server data dir kept: {server.data_dir}")


def instance_body(
    name: str, *, datastore: str, version: str, databases: bool = True
) -> dict[str, Any]:
    """Flavor tiny, 1 GB volume, user ``USER`` (with database ``DATABASE`` where the
    datastore has databases)."""
    store = {"type": datastore, "version": version}
    if not databases:
        body = create_body(name, datastore=store, users=[{"name": USER, "password": PASSWORD}])
        del body["instance"]["databases"]
        return body
    user = {"name": USER, "password": PASSWORD, "databases": [{"name": DATABASE}]}
    return create_body(name, datastore=store, databases=[{"name": DATABASE}], users=[user])


def wait_active(c: httpx.Client, iid: str, *, timeout: float, poll_s: float = 0.02) -> float:
    """Poll the instance until ACTIVE / HEALTHY; the monotonic time it was seen."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        inst = c.get(f"/instances/{iid}").raise_for_status().json()["instance"]
        if inst["status"] == "ERROR":
            raise RuntimeError(f"instance {iid} went to ERROR: {inst.get('fault')}")
        if inst["status"] == "ACTIVE" and inst["operating_status"] == "HEALTHY":
            return time.monotonic()
        time.sleep(poll_s)
    raise TimeoutError(f"instance {iid} not ACTIVE/HEALTHY in {timeout}s")
