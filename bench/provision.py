"""Provisioning time: Coffer's create → first connection, against bare initdb + start.

Starts its own Coffer server (local agent, real PostgreSQL 15), creates ``--count``
instances through the REST API (flavor tiny, 1 GB volume, one database and one user) and
times each from the create request to the first successful TCP connection as the created
user. In the same run, times ``initdb`` (Coffer's options) + ``pg_ctl start`` until a TCP
connection succeeds, for as many fresh data directories. Prints figures; asserts nothing.

    .venv/bin/python bench/provision.py [--count 10] [--concurrency 1] [--keep-data]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import httpx
from tests.support.api import create_body
from tests.support.processes import Credentials

from bench.bare_postgres import BarePostgres, free_low_port, make_engine_dir
from bench.coffer_run import bench_run
from bench.measure import Summary, wait_connectable

T = TypeVar("T")

USER, PASSWORD, DATABASE = "app", "bench-secret-1", "shop"
READY_TIMEOUT_S = 120


@dataclass(frozen=True)
class CofferSample:
    """One create, in seconds from just before ``POST /instances``."""

    request_s: float  # until the POST answered
    connect_s: float  # until the first successful connection as the created user
    active_s: float  # until the instance showed ACTIVE / HEALTHY


def run_pool(tasks: Sequence[Callable[[], T]], concurrency: int) -> list[T]:
    """Run ``tasks`` on ``concurrency`` threads; results in submission order. On an error
    or Ctrl-C, tasks not yet started are cancelled (running ones finish on their own)."""
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        futures = [pool.submit(task) for task in tasks]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def wait_active(c: httpx.Client, iid: str, *, timeout: float = READY_TIMEOUT_S) -> float:
    """Poll the instance until ACTIVE / HEALTHY; return the monotonic time it was seen."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        inst = c.get(f"/instances/{iid}").raise_for_status().json()["instance"]
        if inst["status"] == "ERROR":
            raise RuntimeError(f"instance {iid} went to ERROR: {inst.get('fault')}")
        if inst["status"] == "ACTIVE" and inst["operating_status"] == "HEALTHY":
            return time.monotonic()
        time.sleep(0.02)
    raise TimeoutError(f"instance {iid} not ACTIVE in {timeout}s")


def create_and_time(creds: Credentials, name: str, created: list[str]) -> CofferSample:
    """Create one instance and time it; its id goes into ``created`` as soon as known."""
    with creds.client() as c:
        start = time.monotonic()
        r = c.post("/instances", json=create_body(name, users=[_user()]))
        answered = time.monotonic()
        r.raise_for_status()
        inst: dict[str, Any] = r.json()["instance"]
        created.append(inst["id"])
        connected = wait_connectable(
            timeout=READY_TIMEOUT_S,
            abort=partial(_fault, c, inst["id"]),
            host=inst["ip"][0],
            port=inst["port"],
            user=USER,
            password=PASSWORD,
            dbname=DATABASE,
        )
        active = wait_active(c, inst["id"])
    return CofferSample(answered - start, connected - start, active - start)


def _fault(c: httpx.Client, iid: str) -> str | None:
    """Why instance ``iid`` will never become reachable, or None while it still may."""
    inst = c.get(f"/instances/{iid}").raise_for_status().json()["instance"]
    return f"instance {iid} is ERROR: {inst.get('fault')}" if inst["status"] == "ERROR" else None


def _user() -> dict[str, Any]:
    return {"name": USER, "password": PASSWORD, "databases": [{"name": DATABASE}]}


def bare_start_and_time(root: Path, index: int) -> float:
    """initdb + ``pg_ctl start`` in a fresh data dir until a TCP connection succeeds;
    the cluster is stopped and removed afterwards (outside the timing)."""
    run_dir = make_engine_dir(root / f"run{index}")
    pg = BarePostgres(
        data_dir=root / f"data{index}",
        run_dir=run_dir,
        port=free_low_port(),
        password="bare-secret-1",
        settings={"listen_addresses": "127.0.0.1"},
    )
    start = time.monotonic()
    try:
        pg.initdb()
        pg.start()
        connected = wait_connectable(timeout=READY_TIMEOUT_S, **pg.tcp_conninfo())
    finally:
        pg.stop()
    shutil.rmtree(pg.data_dir, ignore_errors=True)
    return connected - start


def report_coffer(samples: Sequence[CofferSample], concurrency: int) -> Summary:
    first, rest = samples[0], samples[1:]
    print(f"Coffer: {len(samples)} PostgreSQL instances, flavor tiny, concurrency {concurrency}")
    print(
        f"  first create (includes building the template): {first.connect_s:.3f} s "
        f"to first connection, {first.active_s:.3f} s to ACTIVE"
    )
    connect = _row("create → first connection, all", [s.connect_s for s in samples])
    if rest:
        _row("create → first connection, not first", [s.connect_s for s in rest])
    _row("create → ACTIVE/HEALTHY, all", [s.active_s for s in samples])
    _row("POST /instances answered, all", [s.request_s for s in samples])
    return connect


def _row(label: str, values: Sequence[float]) -> Summary:
    summary = Summary.of(values)
    print(f"  {label:<38} {summary.line()}")
    return summary


def report_bare(durations: Sequence[float], concurrency: int) -> Summary:
    print(f"Bare: initdb + pg_ctl start → first connection, concurrency {concurrency}")
    return _row("fresh data dirs", durations)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10, help="instances to create (10)")
    parser.add_argument("--concurrency", type=int, default=1, help="creates at once (1)")
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the server's data dir (logs) at the end"
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.concurrency < 1:
        parser.error("--count and --concurrency must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with bench_run(keep_server_data=args.keep_data) as run:
        creds = run.server.admin()
        names = [f"bench-{i}" for i in range(args.count)]
        coffer_tasks = [partial(create_and_time, creds, name, run.created) for name in names]
        samples = run_pool(coffer_tasks, args.concurrency)
        bare_tasks = [partial(bare_start_and_time, run.scratch, i) for i in range(args.count)]
        durations = run_pool(bare_tasks, args.concurrency)
        coffer = report_coffer(samples, args.concurrency)
        bare = report_bare(durations, args.concurrency)
        warm = Summary.of([s.connect_s for s in samples[1:]] or [samples[0].connect_s])
        print(
            f"Ratio coffer_p50 / bare_p50: {coffer.p50 / bare.p50:.2f} "
            f"(without the first create: {warm.p50 / bare.p50:.2f})"
        )


if __name__ == "__main__":
    main()
