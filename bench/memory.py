"""Memory per idle instance: proportional set size (PSS) of every engine process.

Starts its own Coffer server (local agent, real engines) and creates ``--count`` idle
instances of each ``--datastore`` through the REST API (flavor tiny, 1 GB volume; one
database and one user for PostgreSQL 15 and MariaDB 10.11, one user for Redis 7.0),
``--concurrency`` creates at a time, engine after engine. One warm-up instance per engine
is created and deleted first, so the creates below do not wait for the agent's templates.
Once every instance is ACTIVE / HEALTHY and ``--settle`` seconds have passed, one
snapshot is taken: an instance's processes are those running as its OS account
(``cf-<12 hex>``) or whose command line or working directory names its directory under
``<data_dir>/agent/instances/``; its PSS is the sum of their ``Pss`` from
``/proc/<pid>/smaps_rollup`` (split into anonymous, file-backed and shared memory).
Pages shared between instances (the engine binary and libraries) are divided among
them, so an instance's PSS is its share of the host's memory with that many instances.
PostgreSQL's also depends on its age: its first checkpoint (``checkpoint_timeout``, 5 min
after start, spread over a minute or two) touches ~14 MiB more of its shared memory, so
instances younger than ~7 minutes measure lower (``--settle 450`` measures all after it).

Prints per engine: instances, processes per instance, mean / p50 / max PSS, the total,
the split, and the largest mappings of the median instance; then the Coffer server's
and agent's own PSS. Everything is deleted at the end (also on errors and Ctrl-C) and
the server stopped. Asserts nothing.

    .venv/bin/python bench/memory.py [--count 50] [--datastore all|postgresql|mariadb|redis]
        [--concurrency 4] [--settle 5] [--keep-data]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import os
import pwd
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from tests.support.processes import Credentials, engine_port_range

from bench.bare_postgres import ENGINE_USER
from bench.coffer_run import BenchRun, bench_run, delete_instances, instance_body, wait_active
from bench.measure import percentile
from coffer import engines
from coffer.agent.osusers import account_name
from coffer.settings import ServerSettings

T = TypeVar("T")

READY_TIMEOUT_S = 300
DELETE_TIMEOUT_S = 300
#: How often a create's status is polled (creates take seconds; spare the server).
POLL_S = 0.5
#: Creates slower than this per engine are flagged in the output.
SLOW_CREATE_S = 240
#: Engine ports a test server gets by default (``engine_port_range``).
DEFAULT_PORT_BLOCK = 40
FLAVOR = "tiny"
MIB_PER_KB = 1 / 1024


@dataclass(frozen=True)
class Store:
    type: str
    version: str
    label: str
    databases: bool


STORES: dict[str, Store] = {
    "postgresql": Store("postgresql", "15", "PostgreSQL", databases=True),
    "mariadb": Store("mariadb", "10.11", "MariaDB", databases=True),
    "redis": Store("redis", "7.0", "Redis", databases=False),
}


@dataclass(frozen=True)
class Created:
    """One create: the instance id (None if the POST failed), seconds to ACTIVE, error."""

    iid: str | None
    active_s: float | None
    error: str | None = None


@dataclass(frozen=True)
class CreateRound:
    store: Store
    wall_s: float
    results: list[Created]

    @property
    def active(self) -> list[str]:
        return [r.iid for r in self.results if r.iid is not None and r.error is None]


@dataclass
class Pss:
    """kB, as in ``smaps_rollup``."""

    total: int = 0
    anon: int = 0
    file: int = 0
    shmem: int = 0

    def add(self, other: Pss) -> None:
        self.total += other.total
        self.anon += other.anon
        self.file += other.file
        self.shmem += other.shmem


@dataclass
class InstanceMemory:
    iid: str
    pids: list[int] = field(default_factory=list)
    pss: Pss = field(default_factory=Pss)


# -- creating ----------------------------------------------------------------------------


def installed(store: Store) -> bool:
    """Whether this host has ``store``'s version (asked the way the agent asks)."""
    engine = engines.engine(store.type, engine_user=ENGINE_USER, templates_dir="/nonexistent")
    return store.version in engine.lifecycle.installed_versions()


def create_one(creds: Credentials, store: Store, name: str, created: list[str]) -> Created:
    """Create one instance and wait until ACTIVE / HEALTHY; its id goes into ``created``
    as soon as known. Failures are returned, not raised (one flake must not end the run)."""
    start = time.monotonic()
    iid: str | None = None
    try:
        with creds.client() as c:
            r = c.post(
                "/instances",
                json=instance_body(
                    name, datastore=store.type, version=store.version, databases=store.databases
                ),
            )
            r.raise_for_status()
            iid = r.json()["instance"]["id"]
            assert iid is not None
            created.append(iid)
            wait_active(c, iid, timeout=READY_TIMEOUT_S, poll_s=POLL_S)
    except (httpx.HTTPError, RuntimeError, TimeoutError) as exc:
        return Created(iid, None, f"{type(exc).__name__}: {exc}")
    return Created(iid, time.monotonic() - start)


def run_pool(tasks: Sequence[Callable[[], T]], concurrency: int) -> list[T]:
    """Run ``tasks`` on ``concurrency`` threads; results in submission order. On an error
    or Ctrl-C, tasks not yet started are cancelled (running ones finish on their own)."""
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        futures = [pool.submit(task) for task in tasks]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def warm_up(run: BenchRun, stores: Iterable[Store]) -> float:
    """Create and delete one instance of each store: a create waits for (or builds) its
    engine's templates, which the agent builds in the background at start."""
    start = time.monotonic()
    creds = run.server.admin()
    for store in stores:
        result = create_one(creds, store, f"mem-warm-up-{store.type}", run.created)
        if result.error is not None:
            raise RuntimeError(f"warm-up {store.label}: {result.error}")
        assert result.iid is not None
        if delete_instances(creds, [result.iid]):
            raise RuntimeError(f"the warm-up instance {result.iid} was not deleted")
        run.created.remove(result.iid)
    return time.monotonic() - start


def create_round(run: BenchRun, store: Store, count: int, concurrency: int) -> CreateRound:
    creds = run.server.admin()
    tasks = [
        lambda i=i: create_one(creds, store, f"mem-{store.type}-{i}", run.created)
        for i in range(count)
    ]
    start = time.monotonic()
    results = run_pool(tasks, concurrency)
    return CreateRound(store, time.monotonic() - start, results)


# -- measuring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    uid: int
    cmdline: str
    cwd: str


def scan_processes() -> list[Proc]:
    """Every process's pid, real uid, command line and working directory (one pass)."""
    procs = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            status = Path(f"/proc/{entry}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            procs.append(
                Proc(
                    pid=int(entry),
                    uid=int(uid_line.split()[1]),
                    cmdline=cmdline.decode(errors="replace"),
                    cwd=os.readlink(f"/proc/{entry}/cwd"),
                )
            )
    return procs


_ROLLUP_FIELDS = {"Pss:": "total", "Pss_Anon:": "anon", "Pss_File:": "file", "Pss_Shmem:": "shmem"}


def read_pss(pid: int) -> Pss | None:
    """The process's PSS from ``smaps_rollup`` (kB), or None if it is gone."""
    pss = Pss()
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in _ROLLUP_FIELDS:
            setattr(pss, _ROLLUP_FIELDS[parts[0]], int(parts[1]))
    return pss


def largest_mappings(pids: Iterable[int], top: int = 4) -> list[tuple[str, int]]:
    """PSS (kB) by mapping name over ``pids``' ``smaps``, largest first; nameless
    mappings are ``[anon]``."""
    by_name: dict[str, int] = defaultdict(int)
    for pid in pids:
        with contextlib.suppress(OSError):
            name = "[anon]"
            for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
                first = line.split(maxsplit=1)[0] if line else ""
                if "-" in first and not first.endswith(":"):  # a mapping's header line
                    fields = line.split(maxsplit=5)
                    name = fields[5] if len(fields) == 6 else "[anon]"
                elif first == "Pss:":
                    by_name[name] += int(line.split()[1])
    return sorted(by_name.items(), key=lambda kv: kv[1], reverse=True)[:top]


def measure_instances(
    instances_dir: Path, ids: Sequence[str], procs: Sequence[Proc]
) -> tuple[list[InstanceMemory], set[int]]:
    """Each instance's processes and summed PSS; also every pid attributed to one."""
    out = []
    attributed: set[int] = set()
    for iid in ids:
        needle = str(instances_dir / iid)
        try:
            uid: int | None = pwd.getpwnam(account_name(iid)).pw_uid
        except KeyError:
            uid = None
        mem = InstanceMemory(iid)
        for p in procs:
            if p.uid == uid or needle in p.cmdline or needle in p.cwd:
                pss = read_pss(p.pid)
                if pss is not None:
                    mem.pids.append(p.pid)
                    mem.pss.add(pss)
        attributed.update(mem.pids)
        out.append(mem)
    return out, attributed


# -- report --------------------------------------------------------------------------------


def mib(kb: float) -> float:
    return kb * MIB_PER_KB


def report_creates(rounds: Sequence[CreateRound], concurrency: int, warm_up_s: float) -> None:
    print(f"Creates (flavor {FLAVOR}, 1 GB volume, concurrency {concurrency}):")
    print(f"  warm-up: one create + delete per engine, {warm_up_s:.1f} s")
    for r in rounds:
        times = [c.active_s for c in r.results if c.active_s is not None]
        failed = [c for c in r.results if c.error is not None]
        line = f"  {r.store.label:<11} {len(times):3d} ACTIVE in {r.wall_s:6.1f} s"
        if times:
            line += (
                f"   create → ACTIVE/HEALTHY p50 {percentile(times, 50):5.1f} s"
                f"   max {max(times):5.1f} s"
            )
        if r.wall_s > SLOW_CREATE_S:
            line += f"   (over {SLOW_CREATE_S // 60} minutes)"
        print(line)
        for c in failed[:3]:
            print(f"    failed: {c.iid or '(no id)'}: {c.error}")
        if len(failed) > 3:
            print(f"    ... and {len(failed) - 3} more failures")


def report_engine(store: Store, mems: Sequence[InstanceMemory]) -> None:
    if not mems:
        print(f"  {store.label:<11} no ACTIVE instances")
        return
    totals = [m.pss.total for m in mems]
    counts = sorted({len(m.pids) for m in mems})
    procs = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    mean = statistics.fmean(totals)
    print(
        f"  {store.label:<11} {len(mems):4d} {procs:>6} {mib(mean):9.1f} "
        f"{mib(percentile(totals, 50)):8.1f} {mib(max(totals)):8.1f} {mib(sum(totals)):10.1f}"
        f"   {mib(statistics.fmean(m.pss.anon for m in mems)):5.1f}"
        f" {mib(statistics.fmean(m.pss.file for m in mems)):5.1f}"
        f" {mib(statistics.fmean(m.pss.shmem for m in mems)):5.1f}"
    )


def report_mappings(store: Store, mems: Sequence[InstanceMemory]) -> None:
    if not mems:
        return
    median = sorted(mems, key=lambda m: m.pss.total)[len(mems) // 2]
    parts = ", ".join(f"{name} {mib(kb):.1f}" for name, kb in largest_mappings(median.pids))
    print(f"  {store.label:<11} (MiB) {parts}")


def report_coffer(label: str, pid: int | None) -> None:
    pss = read_pss(pid) if pid is not None else None
    if pss is None:
        print(f"  {label:<14} not running")
        return
    print(
        f"  {label:<14} pid {pid:<8} PSS {mib(pss.total):7.1f} MiB "
        f"(anon {mib(pss.anon):.1f}, file {mib(pss.file):.1f}, shmem {mib(pss.shmem):.1f})"
    )


def measure_and_report(run: BenchRun, rounds: Sequence[CreateRound], settle_s: float) -> None:
    server = run.server
    instances_dir = server.data_dir / "agent" / "instances"
    procs = scan_processes()
    by_store: dict[str, list[InstanceMemory]] = {}
    attributed: set[int] = set()
    for r in rounds:
        mems, pids = measure_instances(instances_dir, r.active, procs)
        by_store[r.store.type] = mems
        attributed |= pids
    server_pid = server.proc.pid if server.proc is not None else None
    agent_pid = server.agent_pid()
    data_dir = str(server.data_dir)
    others = [
        p.pid
        for p in procs
        if p.pid not in attributed
        and p.pid not in (server_pid, agent_pid)
        and (data_dir in p.cmdline or data_dir in p.cwd)
    ]
    print(f"PSS per idle instance, {settle_s:g} s after the last became ACTIVE (MiB):")
    print(
        f"  {'engine':<11} {'n':>4} {'procs':>6} {'mean':>9} {'p50':>8} {'max':>8} "
        f"{'total':>10}   mean: anon  file shmem"
    )
    for r in rounds:
        report_engine(r.store, by_store[r.store.type])
    print("Largest mappings of the median instance, PSS summed over its processes:")
    for r in rounds:
        report_mappings(r.store, by_store[r.store.type])
    print("Coffer's own processes:")
    report_coffer("server", server_pid)
    report_coffer("agent", agent_pid)
    if others:
        total = sum(p.total for p in map(read_pss, others) if p is not None)
        print(f"  {len(others)} other process(es) under the data dir: PSS {mib(total):.1f} MiB")
    n = sum(len(m) for m in by_store.values())
    grand = sum(m.pss.total for mems in by_store.values() for m in mems)
    print(f"All {n} instances together: PSS {mib(grand):.1f} MiB")


# -- main ----------------------------------------------------------------------------------


def server_env(instances: int) -> dict[str, str]:
    """Server settings that let the project hold ``instances`` (1 GB each) at once, where
    Coffer's default quotas or a test server's port block would refuse them."""
    env = {}
    for name in ("default_quota_instances", "default_quota_volumes_gb"):
        default: int = ServerSettings.model_fields[name].default
        env[f"COFFER_{name.upper()}"] = str(max(default, instances + 1))
    if instances + 2 > DEFAULT_PORT_BLOCK:
        env["COFFER_PORT_RANGE"] = engine_port_range(instances + 2)
    return env


def delete_all(run: BenchRun) -> None:
    """Delete every created instance with a generous timeout (the teardown of
    ``bench_run`` waits 60 s only), then leave the stragglers to it."""
    if not run.created or run.server.proc is None or run.server.proc.poll() is not None:
        return
    ids = list(run.created)
    start = time.monotonic()
    try:
        stuck = delete_instances(run.server.admin(), ids, timeout=DELETE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        print(f"warning: deleting instances failed: {exc!r}", file=sys.stderr)
        return
    run.created[:] = stuck
    took = time.monotonic() - start
    print(f"Deleted {len(ids) - len(stuck)} of {len(ids)} instance(s) in {took:.1f} s")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--datastore", choices=["all", *STORES], default="all", help="engines to measure (all)"
    )
    parser.add_argument("--count", type=int, default=50, help="instances per engine (50)")
    parser.add_argument("--concurrency", type=int, default=4, help="creates at once (4)")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds to wait before measuring (5)"
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the server's data dir (logs) at the end"
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.concurrency < 1:
        parser.error("--count and --concurrency must be at least 1")
    return args


def select_stores(choice: str) -> list[Store]:
    wanted = list(STORES.values()) if choice == "all" else [STORES[choice]]
    stores = []
    for store in wanted:
        if installed(store):
            stores.append(store)
        else:
            print(f"note: {store.label} {store.version} is not installed here; skipped")
    if not stores:
        raise SystemExit("no selected engine is installed here")
    return stores


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    stores = select_stores(args.datastore)
    started = time.monotonic()
    env: Mapping[str, str] = server_env(args.count * len(stores))
    with bench_run(keep_server_data=args.keep_data, server_env=env) as run:
        try:
            warm_up_s = warm_up(run, stores)
            rounds = [create_round(run, s, args.count, args.concurrency) for s in stores]
            report_creates(rounds, args.concurrency, warm_up_s)
            time.sleep(args.settle)
            measure_and_report(run, rounds, args.settle)
        finally:
            delete_all(run)
    print(f"Total run time: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted (instances deleted, server stopped)", file=sys.stderr)
        sys.exit(130)
