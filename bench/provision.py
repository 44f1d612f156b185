"""Provisioning time: Coffer's create → first connection, against a bare engine start.

Starts its own Coffer server (local agent, real engines), creates ``--count`` instances of
``--datastore`` through the REST API (flavor tiny, 1 GB volume, one user; one database
too except for Redis) and times each from the create request to the first successful TCP
connection as the created user: a psycopg connection (PostgreSQL 15), a PyMySQL
connection (MariaDB 10.11) or a redis-py ``PING`` (Redis 7.0).

Before timing, one warm-up instance is created right after start, timed ("first create",
reported apart) and deleted, then one of every other installed datastore: a create waits
for its engine's templates, so every template the agent builds in the background at start
exists before timing (a real deployment builds them long before its first creates).

In the same run, times as many bare starts in fresh directories, as the ``coffer`` user:
``initdb`` (Coffer's options) + ``pg_ctl start`` until a TCP connection succeeds;
``mariadb-install-db`` (Coffer's template options) + ``mariadbd --no-defaults`` until
root connects over the unix socket; ``redis-server`` (no persistence) until ``PING``
works. Prints figures; asserts nothing.

    .venv/bin/python bench/provision.py [--datastore postgresql|mariadb|redis]
        [--count 10] [--concurrency 1] [--keep-data]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import httpx
from tests.support.processes import Credentials, engine_port_range

from bench.bare_mariadb import BareMariaDB
from bench.bare_postgres import ENGINE_USER, BarePostgres, make_engine_dir
from bench.bare_redis import BareRedis
from bench.coffer_run import (
    DATABASE,
    PASSWORD,
    USER,
    BenchRun,
    bench_run,
    delete_instances,
    instance_body,
    wait_active,
)
from bench.measure import (
    Summary,
    wait_connectable,
    wait_mariadb_connectable,
    wait_redis_ping,
)
from coffer import engines
from coffer.settings import ServerSettings, parse_port_range

T = TypeVar("T")

READY_TIMEOUT_S = 120
WARM_UP_NAME = "bench-warm-up"
#: Engine ports a test server gets by default (``engine_port_range``).
DEFAULT_PORT_BLOCK = 40


class WaitUser(Protocol):
    """Wait until the created user gets in at ``host:port``; the monotonic time it did."""

    def __call__(
        self, *, host: str, port: int, timeout: float, abort: Callable[[], str | None]
    ) -> float: ...


@dataclass(frozen=True)
class Datastore:
    """What the benchmark does for one ``--datastore``."""

    type: str
    version: str
    label: str  # as printed: "PostgreSQL"
    databases: bool  # whether instances get a database (Redis has none)
    wait_user: WaitUser
    bare_label: str  # what the bare baseline does, as printed
    #: (scratch root, index, port) → seconds to the first connection
    bare: Callable[[Path, int, int], float]


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


def create_and_time(
    creds: Credentials, store: Datastore, name: str, created: list[str]
) -> CofferSample:
    """Create one instance and time it; its id goes into ``created`` as soon as known."""
    with creds.client() as c:
        start = time.monotonic()
        r = c.post(
            "/instances",
            json=instance_body(
                name, datastore=store.type, version=store.version, databases=store.databases
            ),
        )
        answered = time.monotonic()
        r.raise_for_status()
        inst: dict[str, Any] = r.json()["instance"]
        created.append(inst["id"])
        connected = store.wait_user(
            host=inst["ip"][0],
            port=inst["port"],
            timeout=READY_TIMEOUT_S,
            abort=partial(_fault, c, inst["id"]),
        )
        active = wait_active(c, inst["id"], timeout=READY_TIMEOUT_S)
    return CofferSample(answered - start, connected - start, active - start)


def _fault(c: httpx.Client, iid: str) -> str | None:
    """Why instance ``iid`` will never become reachable, or None while it still may."""
    inst = c.get(f"/instances/{iid}").raise_for_status().json()["instance"]
    return f"instance {iid} is ERROR: {inst.get('fault')}" if inst["status"] == "ERROR" else None


# -- the created user's first connection, per engine -------------------------------------


def _postgres_user(
    *, host: str, port: int, timeout: float, abort: Callable[[], str | None]
) -> float:
    return wait_connectable(
        timeout=timeout,
        abort=abort,
        host=host,
        port=port,
        user=USER,
        password=PASSWORD,
        dbname=DATABASE,
    )


def _mariadb_user(
    *, host: str, port: int, timeout: float, abort: Callable[[], str | None]
) -> float:
    return wait_mariadb_connectable(
        timeout=timeout,
        abort=abort,
        host=host,
        port=port,
        user=USER,
        password=PASSWORD,
        database=DATABASE,
    )


def _redis_user(*, host: str, port: int, timeout: float, abort: Callable[[], str | None]) -> float:
    return wait_redis_ping(
        timeout=timeout, abort=abort, host=host, port=port, username=USER, password=PASSWORD
    )


# -- bare baselines ----------------------------------------------------------------------


def bare_postgres(root: Path, index: int, port: int) -> float:
    """initdb + ``pg_ctl start`` in a fresh data dir until a TCP connection succeeds;
    the cluster is stopped and removed afterwards (outside the timing)."""
    run_dir = make_engine_dir(root / f"run{index}")
    pg = BarePostgres(
        data_dir=root / f"data{index}",
        run_dir=run_dir,
        port=port,
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


def bare_mariadb(root: Path, index: int, port: int) -> float:
    """``mariadb-install-db`` + ``mariadbd`` in a fresh data dir until root connects over
    the unix socket; stopped and removed afterwards (outside the timing)."""
    db = BareMariaDB(
        data_dir=root / f"data{index}",
        run_dir=make_engine_dir(root / f"run{index}"),
        port=port,
    )
    start = time.monotonic()
    try:
        db.install_db()
        db.start()
        connected = wait_mariadb_connectable(
            timeout=READY_TIMEOUT_S, abort=db.exited, **db.socket_conninfo()
        )
    finally:
        db.stop()
    shutil.rmtree(db.data_dir, ignore_errors=True)
    shutil.rmtree(db.run_dir, ignore_errors=True)
    return connected - start


def bare_redis(root: Path, index: int, port: int) -> float:
    """``redis-server`` until ``PING`` works; stopped afterwards (outside the timing)."""
    server = BareRedis(run_dir=make_engine_dir(root / f"run{index}"), port=port)
    start = time.monotonic()
    try:
        server.start()
        connected = wait_redis_ping(
            timeout=READY_TIMEOUT_S, abort=server.exited, **server.conninfo()
        )
    finally:
        server.stop()
    shutil.rmtree(server.run_dir, ignore_errors=True)
    return connected - start


DATASTORES: dict[str, Datastore] = {
    "postgresql": Datastore(
        type="postgresql",
        version="15",
        label="PostgreSQL",
        databases=True,
        wait_user=_postgres_user,
        bare_label="initdb + pg_ctl start",
        bare=bare_postgres,
    ),
    "mariadb": Datastore(
        type="mariadb",
        version="10.11",
        label="MariaDB",
        databases=True,
        wait_user=_mariadb_user,
        bare_label="mariadb-install-db + mariadbd",
        bare=bare_mariadb,
    ),
    "redis": Datastore(
        type="redis",
        version="7.0",
        label="Redis",
        databases=False,
        wait_user=_redis_user,
        bare_label="redis-server",
        bare=bare_redis,
    ),
}


# -- warm-up -------------------------------------------------------------------------------


def installed(store: Datastore) -> bool:
    """Whether this host has ``store``'s version (asked the way the agent asks)."""
    engine = engines.engine(store.type, engine_user=ENGINE_USER, templates_dir="/nonexistent")
    return store.version in engine.lifecycle.installed_versions()


def create_and_delete(run: BenchRun, store: Datastore, name: str) -> CofferSample:
    """Create one instance, time it until its user gets in and it is ACTIVE, delete it."""
    creds = run.server.admin()
    sample = create_and_time(creds, store, name, run.created)
    iid = run.created[-1]
    if delete_instances(creds, [iid]):
        raise RuntimeError(f"the warm-up instance {iid} was not deleted")
    run.created.remove(iid)
    return sample


def warm_up(run: BenchRun, store: Datastore) -> tuple[CofferSample, float]:
    """Warm the agent up as one that has run for a while: create, time and delete one
    instance of ``store`` right after start, then one of every other datastore installed
    here. A create waits for (or builds) its engine's templates, so afterwards every
    template the agent builds at start exists, whatever kind and wherever it is. The
    first create and the seconds the other warm-ups took."""
    first = create_and_delete(run, store, WARM_UP_NAME)
    start = time.monotonic()
    for other in DATASTORES.values():
        if other is not store and installed(other):
            create_and_delete(run, other, f"{WARM_UP_NAME}-{other.type}")
    return first, time.monotonic() - start


# -- report --------------------------------------------------------------------------------


def report_coffer(
    store: Datastore,
    first: CofferSample,
    others_s: float,
    samples: Sequence[CofferSample],
    concurrency: int,
) -> Summary:
    print(f"Coffer: {len(samples)} {store.label} instances, flavor tiny, concurrency {concurrency}")
    print(
        f"  first create (warm-up, not in the rows below): {first.connect_s:.3f} s "
        f"to first connection, {first.active_s:.3f} s to ACTIVE"
    )
    print(f"  then {others_s:.3f} s warming up the other engines (a create + delete each)")
    connect = _row("create → first connection, all", [s.connect_s for s in samples])
    _row("create → ACTIVE/HEALTHY, all", [s.active_s for s in samples])
    _row("POST /instances answered, all", [s.request_s for s in samples])
    return connect


def _row(label: str, values: Sequence[float]) -> Summary:
    summary = Summary.of(values)
    print(f"  {label:<38} {summary.line()}")
    return summary


def report_bare(store: Datastore, durations: Sequence[float], concurrency: int) -> Summary:
    print(f"Bare: {store.bare_label} → first connection, concurrency {concurrency}")
    return _row("fresh data dirs", durations)


def bare_ports(run: BenchRun, concurrency: int) -> list[int]:
    """Ports for the bare servers: the free ones of our own server's engine port block
    (no instance is created while the bare servers run), so they never take a port that
    another Coffer on this machine may hand out. At least ``concurrency`` of them."""
    low, high = parse_port_range(run.server.env["COFFER_PORT_RANGE"])
    ports = [port for port in range(high, low - 1, -1) if _binds(port)]
    if len(ports) < concurrency:
        raise RuntimeError(f"only {len(ports)} free ports in {low}-{high} for the bare servers")
    return ports


def _binds(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def server_env(count: int, concurrency: int) -> dict[str, str]:
    """Server settings that let the project hold ``count`` instances (1 GB each) at once
    and leave ``concurrency`` ports for bare servers, where Coffer's default quotas (413)
    or a test server's port block would not."""
    env = {}
    for name in ("default_quota_instances", "default_quota_volumes_gb"):
        default: int = ServerSettings.model_fields[name].default
        env[f"COFFER_{name.upper()}"] = str(max(default, count))
    ports = count + max(concurrency, 1)  # the instances (or warm-up), then bare servers
    if ports > DEFAULT_PORT_BLOCK:
        env["COFFER_PORT_RANGE"] = engine_port_range(ports)
    return env


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datastore", choices=sorted(DATASTORES), default="postgresql", help="(postgresql)"
    )
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
    store = DATASTORES[args.datastore]
    env = server_env(args.count, args.concurrency)
    with bench_run(keep_server_data=args.keep_data, server_env=env) as run:
        first, others_s = warm_up(run, store)
        creds = run.server.admin()
        names = [f"bench-{i}" for i in range(args.count)]
        coffer_tasks = [partial(create_and_time, creds, store, n, run.created) for n in names]
        samples = run_pool(coffer_tasks, args.concurrency)
        ports = bare_ports(run, args.concurrency)
        bare_tasks = [
            partial(store.bare, run.scratch, i, ports[i % len(ports)]) for i in range(args.count)
        ]
        durations = run_pool(bare_tasks, args.concurrency)
        coffer = report_coffer(store, first, others_s, samples, args.concurrency)
        bare = report_bare(store, durations, args.concurrency)
        print(
            f"Ratio coffer_p50 / bare_p50: {coffer.p50 / bare.p50:.2f} "
            f"(first create / bare_p50: {first.connect_s / bare.p50:.2f})"
        )


if __name__ == "__main__":
    main()
