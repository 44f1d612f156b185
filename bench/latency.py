"""Data-path overhead: pgbench -S against a Coffer instance and a bare PostgreSQL.

Starts its own Coffer server, creates one PostgreSQL instance (flavor small) and enables
root on it; then runs a bare PostgreSQL by hand with the instance's own rendered
configuration (``postgresql.conf``, ``coffer.conf``, ``postgresql.auto.conf`` copied from
its data dir; port, socket dir and cluster name differ). Both get ``pgbench -i -s 10``;
then ``pgbench -S`` runs over TCP on 127.0.0.1 with 1 and 8 clients, in the order coffer,
bare, bare, coffer. Prints TPS, mean latency and coffer/bare ratios; asserts nothing.

    .venv/bin/python bench/latency.py [--seconds 10] [--bare-first] [--keep-data]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from tests.support.api import create_body, wait_instance
from tests.support.processes import CofferServer, Credentials

from bench.bare_postgres import ENGINE_USER, PG_BIN, BarePostgres, free_low_port, make_engine_dir
from bench.coffer_run import bench_run
from bench.measure import wait_connectable

PGBENCH = PG_BIN / "pgbench"
BENCH_DB = "pgbench"
SCALE = 10
#: (clients, threads) per pgbench -S run.
CLIENT_COUNTS = ((1, 1), (8, 2))
#: Files of the instance's data dir that make up its configuration.
CONFIG_FILES = ("postgresql.conf", "coffer.conf", "postgresql.auto.conf")
_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M)
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.M)


@dataclass(frozen=True)
class Target:
    """A server pgbench talks to over TCP, as a superuser."""

    name: str
    port: int
    user: str
    password: str
    host: str = "127.0.0.1"

    def conninfo(self, dbname: str) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": dbname,
        }


@dataclass(frozen=True)
class RunResult:
    tps: float
    latency_ms: float


def create_coffer_target(creds: Credentials, created: list[str]) -> tuple[str, Target]:
    """Create a small instance (its id into ``created`` at once), wait until it is
    ACTIVE, enable root; (id, target)."""
    with creds.client() as c:
        r = c.post("/instances", json=create_body("bench-latency", flavorRef="small"))
        r.raise_for_status()
        iid = r.json()["instance"]["id"]
        created.append(iid)
        inst = wait_instance(c, iid)
        root = c.post(f"/instances/{iid}/root").raise_for_status().json()["user"]
    return iid, Target("coffer", inst["port"], root["name"], root["password"], inst["ip"][0])


def copy_config(source: Path, target: Path) -> None:
    """Copy the configuration files of data dir ``source`` over those of ``target``
    (owner and mode of the copies: the engine user, 0600)."""
    for name in CONFIG_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
            shutil.chown(target / name, ENGINE_USER, ENGINE_USER)
            os.chmod(target / name, 0o600)


def start_bare_like(instance_data_dir: Path, root: Path) -> tuple[BarePostgres, Target]:
    """initdb a bare cluster under ``root``, give it the instance's configuration, start it
    and wait until it accepts a TCP connection."""
    pg = BarePostgres(
        data_dir=root / "data",
        run_dir=make_engine_dir(root / "run"),
        port=free_low_port(),
        password="bare-secret-1",
        settings={"cluster_name": "bare"},
    )
    pg.initdb()
    copy_config(instance_data_dir, pg.data_dir)
    pg.start()
    conninfo = pg.tcp_conninfo()
    wait_connectable(timeout=60, **conninfo)
    return pg, Target("bare", pg.port, conninfo["user"], pg.password)


def settings_differences(a: Target, b: Target) -> list[str]:
    """Names of non-default settings whose values differ between the two servers."""
    query = "SELECT name, setting FROM pg_settings WHERE source <> 'default'"
    values = []
    for target in (a, b):
        with psycopg.connect(**target.conninfo("postgres")) as conn:
            values.append(dict(conn.execute(query).fetchall()))
    names = sorted(set(values[0]) | set(values[1]))
    return [name for name in names if values[0].get(name) != values[1].get(name)]


def pgbench(target: Target, *args: str) -> str:
    """Run pgbench against ``target``'s bench database; its stdout (RuntimeError if it fails)."""
    argv = [str(PGBENCH), "-h", target.host, "-p", str(target.port), "-U", target.user]
    env = {**os.environ, "PGPASSWORD": target.password}
    res = subprocess.run(
        [*argv, *args, BENCH_DB], env=env, capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(args)} on {target.name} failed: {res.stderr}")
    return res.stdout


def initialise(target: Target) -> None:
    """Create the bench database and fill it with ``pgbench -i -s SCALE``."""
    with psycopg.connect(**target.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    pgbench(target, "-i", "-q", "-s", str(SCALE))


def select_only(target: Target, *, clients: int, threads: int, seconds: int) -> RunResult:
    out = pgbench(target, "-S", "-n", "-T", str(seconds), "-c", str(clients), "-j", str(threads))
    tps, latency = _TPS.search(out), _LATENCY.search(out)
    if tps is None or latency is None:
        raise RuntimeError(f"unexpected pgbench output:\n{out}")
    return RunResult(float(tps.group(1)), float(latency.group(1)))


def run_alternating(
    first: Target, second: Target, *, clients: int, threads: int, seconds: int
) -> dict[str, list[RunResult]]:
    """Runs in the order first, second, second, first; the results of each target."""
    results: dict[str, list[RunResult]] = {first.name: [], second.name: []}
    for target in (first, second, second, first):
        run = select_only(target, clients=clients, threads=threads, seconds=seconds)
        results[target.name].append(run)
    return results


def report(clients: int, results: dict[str, list[RunResult]]) -> None:
    means = {}
    for name, runs in results.items():
        tps = sum(r.tps for r in runs) / len(runs)
        latency = sum(r.latency_ms for r in runs) / len(runs)
        means[name] = (tps, latency)
        each = ", ".join(f"{r.tps:.0f}" for r in runs)
        print(f"  {clients} client(s) {name:<6} {tps:9.0f} tps  {latency:6.3f} ms  (runs: {each})")
    (c_tps, c_lat), (b_tps, b_lat) = means["coffer"], means["bare"]
    print(
        f"  {clients} client(s) coffer/bare  tps {c_tps / b_tps:.3f}  latency {c_lat / b_lat:.3f}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each pgbench run (10)")
    parser.add_argument(
        "--bare-first",
        action="store_true",
        help="run in the order bare, coffer, coffer, bare (to check for an order effect)",
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the server's data dir (logs) at the end"
    )
    args = parser.parse_args(argv)
    if args.seconds < 1:
        parser.error("--seconds must be at least 1")
    return args


def benchmark(
    server: CofferServer, bare_root: Path, *, seconds: int, bare_first: bool, created: list[str]
) -> None:
    """Everything between start-up and clean-up; stops the bare cluster it starts and
    puts the id of the instance it creates into ``created``."""
    iid, coffer = create_coffer_target(server.admin(), created)
    instance_data = server.data_dir / "agent" / "instances" / iid / "data"
    bare_pg, bare = start_bare_like(instance_data, bare_root)
    try:
        differing = settings_differences(coffer, bare)
        print(f"Non-default settings that differ between the two: {', '.join(differing)}")
        for target in (coffer, bare):
            initialise(target)
        first, second = (bare, coffer) if bare_first else (coffer, bare)
        order = f"{first.name}, {second.name}, {second.name}, {first.name}"
        print(f"pgbench -S over TCP 127.0.0.1, scale {SCALE}, {seconds} s per run, order {order}")
        for clients, threads in CLIENT_COUNTS:
            runs = run_alternating(first, second, clients=clients, threads=threads, seconds=seconds)
            report(clients, runs)
    finally:
        bare_pg.stop()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with bench_run(keep_server_data=args.keep_data) as run:
        benchmark(
            run.server,
            run.scratch,
            seconds=args.seconds,
            bare_first=args.bare_first,
            created=run.created,
        )


if __name__ == "__main__":
    main()
