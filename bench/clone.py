"""Instant clones: time to clone a 100 MB and a 1 GB instance, against a raw copy.

Starts its own Coffer server (local agent, XFS volumes). Per datastore and size: creates a
source (flavor medium), fills it with ``bench.backup_data`` shop data of that size as the
instance's root, settles it (checkpoint / flush), then clones it ``--repeat`` times
(``POST /instances`` with ``restorePoint`` ``{"instanceRef": source}``), timing each from
the POST to ACTIVE/HEALTHY and the agent's own create command (from ``agent.log``: the
volume freeze + reflink copy, the engine's adoption of the copy and its first start with
crash recovery); each clone is deleted before the next. In the same run, ``cp -a`` of the
source's data directory (to a scratch directory on the same host) + ``sync`` gives the
raw-copy baseline. Goal: a clone in ≤ 1 s whatever the size. Prints figures; asserts
nothing; removes everything at the end, also on errors and Ctrl-C. Needs root.

    .venv/bin/python bench/clone.py [--datastore postgresql|mariadb|all] [--repeat 3]
        [--sizes-mb 100,1000]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.backup import (
    DATASTORES,
    Datastore,
    agent_seconds,
    create_instance,
    enable_root,
    forget,
    installed,
    source_body,
    tree_bytes,
    volume_for,
)
from bench.backup_data import ENGINES, Workload
from bench.coffer_run import BenchRun, bench_run

MB = 1e6


@dataclass(frozen=True)
class Cloned:
    api_s: float  # POST → ACTIVE/HEALTHY seen
    agent_s: float | None  # the agent's create command


@dataclass(frozen=True)
class SizeResult:
    store: Datastore
    data_bytes: int
    copy_s: float
    clones: list[Cloned]


def raw_copy(run: BenchRun, data_dir: Path, index: int) -> float:
    """``cp -a`` of the data directory + ``sync``, seconds (the copy is removed)."""
    target = run.scratch / f"copy-{index}"
    start = time.monotonic()
    subprocess.run(["cp", "-a", str(data_dir), str(target)], check=True)
    subprocess.run(["sync"], check=True)
    seconds = time.monotonic() - start
    shutil.rmtree(target)
    return seconds


def clone_once(run: BenchRun, store: Datastore, source: str, volume_gb: int, name: str) -> Cloned:
    body = source_body(store, name, volume_gb)
    body["instance"].pop("databases")
    body["instance"].pop("users")
    body["instance"]["restorePoint"] = {"instanceRef": source}
    iid, seconds = create_instance(run, body)
    agent = agent_seconds(run).get(f"create-{iid}:ensure")
    forget(run, [iid])
    return Cloned(seconds, agent)


def bench_size(run: BenchRun, store: Datastore, size: int, repeat: int, index: int) -> SizeResult:
    volume_gb = volume_for(size)
    source, took = create_instance(
        run, source_body(store, f"clone-src-{store.type}-{index}", volume_gb)
    )
    print(f"{store.label} {size / MB:.0f} MB: source created in {took:.2f} s", flush=True)
    try:
        login = enable_root(run, source)
        ENGINES[store.type].load(login, Workload(size))
        ENGINES[store.type].settle(login)
        data_dir = run.server.data_dir / "agent" / "instances" / source / "data"
        data_bytes = tree_bytes(data_dir)
        copy_s = raw_copy(run, data_dir, index)
        print(f"  data dir {data_bytes / MB:.0f} MB; cp -a + sync {copy_s:.2f} s", flush=True)
        clones = []
        for i in range(repeat):
            cloned = clone_once(run, store, source, volume_gb, f"clone-{store.type}-{index}-{i}")
            agent = f"{cloned.agent_s:.2f} s" if cloned.agent_s is not None else "?"
            print(f"  clone {i + 1}: {cloned.api_s:.2f} s to ACTIVE (agent {agent})", flush=True)
            clones.append(cloned)
        return SizeResult(store, data_bytes, copy_s, clones)
    finally:
        forget(run, [source])


def report(results: Sequence[SizeResult]) -> None:
    print()
    print("Clone: POST → ACTIVE/HEALTHY (median / max), the agent's part, raw cp -a + sync")
    header = f"{'datastore':<11} {'data MB':>8} {'clone s':>15} {'agent s':>8} {'cp -a s':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        api = [c.api_s for c in r.clones]
        agent = [c.agent_s for c in r.clones if c.agent_s is not None]
        agent_text = f"{statistics.median(agent):.2f}" if agent else "?"
        print(
            f"{r.store.label:<11} {r.data_bytes / MB:>8.0f} "
            f"{statistics.median(api):>7.2f} / {max(api):<5.2f} {agent_text:>8} {r.copy_s:>8.2f}"
        )
    print("goal: ≤ 1 s and independent of the data size")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--datastore", choices=[*DATASTORES, "all"], default="all")
    parser.add_argument("--repeat", type=int, default=3, help="clones per size (3)")
    parser.add_argument("--sizes-mb", default="100,1000", help="source sizes, MB (100,1000)")
    args = parser.parse_args(argv)
    args.sizes = [int(float(s) * MB) for s in str(args.sizes_mb).split(",") if s.strip()]
    if args.repeat < 1 or not args.sizes or min(args.sizes) < MB:
        parser.error("--repeat must be at least 1 and every size at least 1 MB")
    if os.geteuid() != 0:
        parser.error("run as root")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    names = list(DATASTORES) if args.datastore == "all" else [args.datastore]
    env = {"COFFER_VERIFY_BACKUPS": "false", "COFFER_DEFAULT_QUOTA_VOLUMES_GB": "100"}
    results = []
    with bench_run(server_env=env) as run:
        index = 0
        for name in names:
            store = DATASTORES[name]
            if not installed(store):
                print(f"{store.label} {store.version} is not installed here: skipped")
                continue
            for size in args.sizes:
                results.append(bench_size(run, store, size, args.repeat, index))
                index += 1
    report(results)


if __name__ == "__main__":
    main()
