"""Backup and restore throughput: Coffer's backups through the REST API against a raw copy.

Starts its own Coffer server (local agent, real engines, backups verified as by default)
with the backups in a directory (default) or in a real Swift started for the run
(``--store swift``, ``tests.support.swift.SwiftCluster``). Per datastore:

1. creates an instance (flavor medium, a volume of about 5x the data) and fills it with
   ``--size-mb`` MB (10^6 bytes) of shop data through the engine's client as the
   instance's root (``bench.backup_data``: text and random bytes, three tables with
   indexes), then checkpoints / flushes;
2. raw baselines, in the same run: ``cp -a`` of the instance's data directory (read on
   the agent host) + ``sync``, and ``tar -c | zstd -3 > file`` + ``sync``, both onto a
   scratch XFS image loop-mounted from inside another loop-mounted XFS image, as
   instance volumes are;
3. a full backup (``POST /backups``, polled until COMPLETED): MB/s of ``raw_size`` over
   the time from the POST to COMPLETED, and over the agent's own command time (from
   ``agent.log``); stored size and ratio;
4. changes 5 % of the data (note rewrites + appended attachments) and prints what the
   engine's log says it wrote next to an incremental's raw and stored size;
5. restores the full, then the chain, into new instances (``POST /instances`` with
   ``restorePoint``): MB/s of the chain's raw bytes over the time to ACTIVE/HEALTHY;
6. PITR lag: while one small transaction commits every 20 ms for ``PITR_WRITE_S``, then
   while the instance idles for ``PITR_IDLE_S``, samples how far the instance's
   ``latest_restorable_time`` trails the wall clock (every 0.25 s; the change log is
   shipped by the agent and the time reaches the API with its heartbeats).

Every timed step runs alone: each backup's verification (a restore into a throwaway plus
the engine's checks) is waited for before the next step; its time, from COMPLETED seen to
the verification seen ended, is printed too. ``--repeat`` runs steps 2-5 again on the
same instance. Prints figures and ratios; asserts nothing; stops and removes everything
(instances, server, Swift, mounts) also on errors and Ctrl-C. Needs root.

    .venv/bin/python bench/backup.py [--size-mb 1000] [--datastore postgresql|mariadb|all]
        [--store directory|swift] [--repeat 1] [--keep-data]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tests.support.swift import SwiftCluster, swift_installed

from bench.backup_data import ENGINES, EngineData, Login, Workload
from bench.bare_postgres import ENGINE_USER
from bench.coffer_run import BenchRun, bench_run, delete_instances, instance_body, wait_active
from coffer import engines

MB = 1e6
FLAVOR = "medium"
CHANGE_FRACTION = 0.05
#: volume bytes per byte of data: the data with its indexes, PostgreSQL's WAL archive and
#: pg_wal (MariaDB needs less), and room to change 5 %
VOLUME_PER_DATA = 5
POLL_S = 0.05
STEP_TIMEOUT_S = 1800
SWIFT_CONTAINER = "coffer-bench"
PITR_WRITE_S = 20.0
PITR_IDLE_S = 10.0
PITR_SAMPLE_S = 0.25
_FINISHED = re.compile(r"command (\S+) finished ok=(\w+) in ([\d.]+)s")


@dataclass(frozen=True)
class Datastore:
    type: str
    version: str
    label: str


DATASTORES = {
    "postgresql": Datastore("postgresql", "15", "PostgreSQL"),
    "mariadb": Datastore("mariadb", "10.11", "MariaDB"),
}


# -- raw baselines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Copied:
    """One timed copy of ``source_bytes`` (apparent size) producing ``output_bytes``."""

    source_bytes: int
    output_bytes: int
    seconds: float

    @property
    def mb_s(self) -> float:
        return self.source_bytes / self.seconds / MB


def tree_bytes(path: Path) -> int:
    """Apparent bytes of the regular files under ``path`` (not following links)."""
    total = 0
    for parent, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(parent, name))
            if st.st_mode & 0o170000 == 0o100000:
                total += st.st_size
    return total


def _run(argv: Sequence[str]) -> None:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")


def _unmount(point: Path) -> None:
    for _ in range(50):
        if not os.path.ismount(point):
            return
        if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode:
            time.sleep(0.1)
    subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


@contextmanager
def scratch_volume(parent: Path, size: int) -> Iterator[Path]:
    """A mounted XFS of ``size`` bytes made like an instance volume: a sparse image with
    ``-m reflink=1``, loop-mounted ``noatime,nouuid``, kept in a sparse XFS "pool" image
    loop-mounted ``noatime,discard``. Both are unmounted and removed at exit."""
    pool_image, pool, volume = parent / "pool.img", parent / "pool", parent / "volume"
    with ExitStack() as stack:
        stack.callback(pool_image.unlink, missing_ok=True)
        _make_xfs(pool_image, 2 * size + (1 << 30))
        pool.mkdir()
        stack.callback(pool.rmdir)
        _run(["mount", "-o", "loop,noatime,discard", str(pool_image), str(pool)])
        stack.callback(_unmount, pool)
        image = pool / "volume.img"
        _make_xfs(image, size)
        stack.callback(image.unlink, missing_ok=True)
        volume.mkdir()
        stack.callback(volume.rmdir)
        _run(["mount", "-o", "loop,noatime,nouuid", str(image), str(volume)])
        stack.callback(_unmount, volume)
        yield volume


def _make_xfs(image: Path, size: int) -> None:
    with open(image, "wb") as f:
        f.truncate(size)
    _run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)])


def copy_baseline(source: Path, volume: Path) -> Copied:
    """``cp -a source`` onto ``volume`` + ``sync -f``, timed; the copy is removed after."""
    target = volume / "copy"
    size = tree_bytes(source)
    start = time.monotonic()
    _run(["cp", "-a", str(source), str(target)])
    _run(["sync", "-f", str(target)])
    seconds = time.monotonic() - start
    shutil.rmtree(target)
    return Copied(size, size, seconds)


def tar_zstd_baseline(source: Path, volume: Path) -> Copied:
    """``tar -c source | zstd -3 > file`` on ``volume`` + ``sync -f``, timed (tar's exit
    1, "file changed as we read it" on a live data dir, is accepted); removed after."""
    target = volume / "data.tar.zst"
    size = tree_bytes(source)
    start = time.monotonic()
    with open(target, "wb") as out:
        tar = subprocess.Popen(
            ["tar", "--create", "--file=-", f"--directory={source.parent}", source.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert tar.stdout is not None
        try:
            zstd = subprocess.run(
                ["zstd", "-3", "-q", "-c"], stdin=tar.stdout, stdout=out, check=False
            )
        finally:
            tar.stdout.close()
            tar_status = tar.wait()
    _run(["sync", "-f", str(target)])
    seconds = time.monotonic() - start
    stored = target.stat().st_size
    target.unlink()
    if tar_status not in (0, 1) or zstd.returncode != 0:
        raise RuntimeError(f"tar | zstd failed (tar {tar_status}, zstd {zstd.returncode})")
    return Copied(size, stored, seconds)


# -- backups and restores through the API ----------------------------------------------------


@dataclass(frozen=True)
class TakenBackup:
    id: str
    raw_bytes: int
    stored_bytes: int
    seconds: float  # POST → COMPLETED seen
    verify_s: float  # COMPLETED seen → verification seen ended
    verify_status: str

    @property
    def mb_s(self) -> float:
        return self.raw_bytes / self.seconds / MB


@dataclass(frozen=True)
class Restored:
    instance_id: str
    raw_bytes: int  # the chain's raw bytes
    seconds: float  # POST → ACTIVE/HEALTHY seen

    @property
    def mb_s(self) -> float:
        return self.raw_bytes / self.seconds / MB


def _get_backup(c: httpx.Client, bid: str) -> dict[str, Any]:
    backup: dict[str, Any] = c.get(f"/backups/{bid}").raise_for_status().json()["backup"]
    return backup


def take_backup(c: httpx.Client, iid: str, name: str, *, incremental: bool) -> TakenBackup:
    """POST a backup, poll until COMPLETED (``RuntimeError`` if FAILED), then until its
    verification has ended, so that nothing of it runs during the next timed step."""
    body: dict[str, Any] = {"name": name, "instance": iid}
    if incremental:
        body["incremental"] = 1
    start = time.monotonic()
    bid = c.post("/backups", json={"backup": body}).raise_for_status().json()["backup"]["id"]
    end = start + STEP_TIMEOUT_S
    while (backup := _get_backup(c, bid))["status"] not in ("COMPLETED", "FAILED"):
        if time.monotonic() > end:
            raise TimeoutError(f"backup {bid} not finished in {STEP_TIMEOUT_S}s")
        time.sleep(POLL_S)
    completed = time.monotonic()
    if backup["status"] == "FAILED":
        raise RuntimeError(f"backup {bid} FAILED: {backup.get('fail_reason')}")
    # verification is on for this server: None means not started yet
    while (verified := _get_backup(c, bid))["verification"]["status"] not in ("VERIFIED", "FAILED"):
        if time.monotonic() > completed + STEP_TIMEOUT_S:
            raise TimeoutError(f"backup {bid} not verified in {STEP_TIMEOUT_S}s")
        time.sleep(POLL_S)
    status = str(verified["verification"]["status"])
    return TakenBackup(
        id=bid,
        raw_bytes=int(backup["raw_size"]),
        stored_bytes=round(float(backup["size"]) * 1024**3),
        seconds=completed - start,
        verify_s=time.monotonic() - completed,
        verify_status=status,
    )


def source_body(store: Datastore, name: str, volume_gb: int) -> dict[str, Any]:
    body = instance_body(name, datastore=store.type, version=store.version)
    body["instance"].update(flavorRef=FLAVOR, volume={"size": volume_gb})
    return body


def create_instance(run: BenchRun, body: dict[str, Any]) -> tuple[str, float]:
    """POST the instance (its id into ``run.created`` at once) and wait until it is
    ACTIVE/HEALTHY; its id and the seconds from the POST."""
    with run.server.admin().client() as c:
        start = time.monotonic()
        iid = str(c.post("/instances", json=body).raise_for_status().json()["instance"]["id"])
        run.created.append(iid)
        return iid, wait_active(c, iid, timeout=STEP_TIMEOUT_S) - start


def restore(
    run: BenchRun, store: Datastore, name: str, volume_gb: int, chain: Sequence[TakenBackup]
) -> Restored:
    """Restore ``chain[-1]`` (with its parents) into a new instance, timed."""
    body = source_body(store, name, volume_gb)
    body["instance"].pop("databases")
    body["instance"].pop("users")
    body["instance"]["restorePoint"] = {"backupRef": chain[-1].id}
    iid, seconds = create_instance(run, body)
    return Restored(iid, sum(b.raw_bytes for b in chain), seconds)


def forget(run: BenchRun, ids: Sequence[str]) -> None:
    """Delete instances now (not timed) to give their volumes back."""
    stuck = delete_instances(run.server.admin(), ids, timeout=300)
    if stuck:
        print(f"warning: not deleted: {', '.join(stuck)}", file=sys.stderr)
    for iid in ids:
        if iid not in stuck:
            run.created.remove(iid)


def agent_seconds(run: BenchRun) -> dict[str, float]:
    """Command id → seconds, from the agent's "command ... finished ok=True" lines."""
    try:
        text = (run.server.data_dir / "agent.log").read_text(errors="replace")
    except OSError:
        return {}
    return {m[1]: float(m[3]) for m in _FINISHED.finditer(text) if m[2] == "True"}


# -- one datastore ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    data: Copied
    tar: Copied
    full: TakenBackup
    incremental: TakenBackup
    changed_payload: int
    changed_log: int
    restore_full: Restored
    restore_chain: Restored
    agent: dict[str, float]


def installed(store: Datastore) -> bool:
    engine = engines.engine(store.type, engine_user=ENGINE_USER, templates_dir="/nonexistent")
    return store.version in engine.lifecycle.installed_versions()


def enable_root(run: BenchRun, iid: str) -> Login:
    with run.server.admin().client() as c:
        inst = c.get(f"/instances/{iid}").raise_for_status().json()["instance"]
        user = c.post(f"/instances/{iid}/root").raise_for_status().json()["user"]
    return Login(inst["ip"][0], int(inst["port"]), user["name"], user["password"])


def one_round(
    run: BenchRun,
    store: Datastore,
    source: tuple[str, Login],
    *,
    workload: Workload,
    volume_gb: int,
    index: int,
) -> Round:
    iid, login = source
    data_engine: EngineData = ENGINES[store.type]
    data_dir = run.server.data_dir / "agent" / "instances" / iid / "data"
    size = tree_bytes(data_dir)
    scratch = run.scratch / f"{store.type}-{index}"
    scratch.mkdir()
    with scratch_volume(scratch, 2 * size + (1 << 30)) as volume:
        copied = copy_baseline(data_dir, volume)
        print(f"  cp -a + sync of {size / MB:.0f} MB: {copied.seconds:.2f} s")
        tarred = tar_zstd_baseline(data_dir, volume)
        print(f"  tar | zstd -3 + sync: {tarred.seconds:.2f} s")
    scratch.rmdir()
    with run.server.admin().client() as c:
        full = take_backup(c, iid, f"bench-full-{index}", incremental=False)
        print(f"  full backup: {full.seconds:.2f} s, verification {full.verify_s:.2f} s")
        before = data_engine.log_position(login)
        payload = data_engine.change(login, workload, CHANGE_FRACTION, seed=100 + index)
        logged = data_engine.log_position(login) - before
        print(f"  changed {payload / MB:.1f} MB of payload ({logged / MB:.1f} MB of log)")
        incremental = take_backup(c, iid, f"bench-incr-{index}", incremental=True)
        print(
            f"  incremental: {incremental.seconds:.2f} s, verification {incremental.verify_s:.2f} s"
        )
    made = []
    try:
        restored_full = restore(run, store, f"bench-rf-{index}", volume_gb, [full])
        made.append(restored_full.instance_id)
        print(f"  restore of the full: {restored_full.seconds:.2f} s")
        chain = [full, incremental]
        restored_chain = restore(run, store, f"bench-rc-{index}", volume_gb, chain)
        made.append(restored_chain.instance_id)
        print(f"  restore of the chain: {restored_chain.seconds:.2f} s")
    finally:
        forget(run, made)
    return Round(
        copied,
        tarred,
        full,
        incremental,
        payload,
        logged,
        restored_full,
        restored_chain,
        agent_seconds(run),
    )


@dataclass(frozen=True)
class Lag:
    """How far the latest restorable time trailed the clock, seconds per sample."""

    writing: list[float]
    idle: list[float]
    commits: int


def _restorable_lag(c: httpx.Client, iid: str) -> float | None:
    shown = c.get(f"/instances/{iid}").raise_for_status().json()["instance"]
    latest = shown.get("latest_restorable_time")
    if not latest:
        return None
    moment = datetime.fromisoformat(latest.replace("Z", "+00:00"))
    return time.time() - moment.replace(tzinfo=moment.tzinfo or UTC).timestamp()


def pitr_lag(run: BenchRun, store: Datastore, iid: str, login: Login) -> Lag:
    """Sample the lag while a trickle of commits runs, then while idle (step 6)."""
    until = time.monotonic() + PITR_WRITE_S
    commits: list[int] = []
    writer = threading.Thread(
        target=lambda: commits.append(ENGINES[store.type].trickle(login, until, 0.02)),
        daemon=True,
    )
    writing: list[float] = []
    idle: list[float] = []
    with run.server.admin().client() as c:
        writer.start()
        while writer.is_alive():
            if (lag := _restorable_lag(c, iid)) is not None:
                writing.append(lag)
            time.sleep(PITR_SAMPLE_S)
        writer.join()
        end = time.monotonic() + PITR_IDLE_S
        while time.monotonic() < end:
            if (lag := _restorable_lag(c, iid)) is not None:
                idle.append(lag)
            time.sleep(PITR_SAMPLE_S)
    return Lag(writing, idle, sum(commits))


def bench_datastore(
    run: BenchRun, store: Datastore, size: int, repeat: int
) -> tuple[list[Round], Lag]:
    volume_gb = volume_for(size)
    print(f"{store.label}: instance flavor {FLAVOR}, {volume_gb} GB volume")
    iid, took = create_instance(run, source_body(store, f"bench-{store.type}", volume_gb))
    print(f"  created in {took:.2f} s")
    try:
        login = enable_root(run, iid)
        workload = Workload(size)
        start = time.monotonic()
        payload = ENGINES[store.type].load(login, workload)
        loaded = time.monotonic() - start
        print(f"  loaded {payload / MB:.0f} MB of payload in {loaded:.1f} s", end="")
        start = time.monotonic()
        ENGINES[store.type].settle(login)
        print(f", settled (checkpoint/flush) in {time.monotonic() - start:.1f} s")
        rounds = [
            one_round(run, store, (iid, login), workload=workload, volume_gb=volume_gb, index=i)
            for i in range(repeat)
        ]
        lag = pitr_lag(run, store, iid, login)
        print(f"  PITR lag sampled: {len(lag.writing)} while writing, {len(lag.idle)} idle")
        return rounds, lag
    finally:
        forget(run, [iid])


def volume_for(size: int) -> int:
    return max(2, math.ceil(size * VOLUME_PER_DATA / 1024**3) + 1)


# -- report ----------------------------------------------------------------------------------


def report(
    results: Sequence[tuple[Datastore, list[Round]]], lags: dict[str, Lag], store_kind: str
) -> None:
    print()
    print(f"Backups in the {store_kind} store; MB = 10^6 bytes; ratios against cp -a + sync")
    header = (
        f"{'datastore':<11} {'data MB':>8} {'raw copy':>9} {'tar+zstd':>9} "
        f"{'backup MB/s':>16} {'restore MB/s':>16} {'incr stored/changed MB':>23} "
        f"{'verify s':>9}"
    )
    print(header)
    print("-" * len(header))
    for store, rounds in results:
        for r in rounds:
            raw = r.data.mb_s
            incr = f"{r.incremental.stored_bytes / MB:.1f} / {r.changed_log / MB:.1f}"
            verify = f"{r.full.verify_s:.1f}"
            print(
                f"{store.label:<11} {r.data.source_bytes / MB:>8.0f} {raw:>9.0f} "
                f"{r.tar.mb_s:>9.0f} {r.full.mb_s:>7.0f} ({r.full.mb_s / raw:4.2f}x) "
                f"{r.restore_full.mb_s:>7.0f} ({r.restore_full.mb_s / raw:4.2f}x) "
                f"{incr:>23} {verify:>9}"
            )
    print("goal: backup ≥ 0.8x raw copy")
    for store, rounds in results:
        for i, r in enumerate(rounds):
            details(store, i, r)
    print()
    print("PITR lag: how far latest_restorable_time trails the clock, seconds (goal ≤ 5 s)")
    for store, _ in results:
        lag = lags[store.type]
        for label, samples in (("one commit / 20 ms", lag.writing), ("idle", lag.idle)):
            if not samples:
                print(f"  {store.label:<11} {label:<20} no restorable time shown")
                continue
            ordered = sorted(samples)
            p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
            print(
                f"  {store.label:<11} {label:<20} p50 {statistics.median(ordered):.2f}"
                f"  p95 {p95:.2f}  max {ordered[-1]:.2f}  ({len(ordered)} samples)"
            )
        print(f"  {store.label:<11} commits during the write phase: {lag.commits}")


def details(store: Datastore, index: int, r: Round) -> None:
    print(f"\n{store.label}, round {index + 1}:")
    print(
        f"  raw copy: {r.data.source_bytes / MB:.0f} MB in {r.data.seconds:.2f} s; tar+zstd -3: "
        f"{r.tar.output_bytes / MB:.0f} MB ({r.data.source_bytes / r.tar.output_bytes:.2f}:1) "
        f"in {r.tar.seconds:.2f} s"
    )
    for label, b, cmd in (
        ("full", r.full, f"backup-{r.full.id}:stream"),
        ("incremental", r.incremental, f"backup-{r.incremental.id}:stream"),
    ):
        agent = r.agent.get(cmd)
        agent_text = f"agent {agent:.2f} s ({b.raw_bytes / agent / MB:.0f} MB/s)" if agent else ""
        check = r.agent.get(f"verify-{b.id}:check")
        check_text = f", agent check {check:.2f} s" if check else ""
        print(
            f"  {label} backup: raw {b.raw_bytes / MB:.1f} MB, stored {b.stored_bytes / MB:.1f} MB "
            f"({b.raw_bytes / max(b.stored_bytes, 1):.2f}:1), {b.seconds:.2f} s API "
            f"({b.mb_s:.0f} MB/s), {agent_text}; verification {b.verify_status} "
            f"{b.verify_s:.2f} s{check_text}"
        )
    print(
        f"  change: {r.changed_payload / MB:.1f} MB of payload written, engine log "
        f"{r.changed_log / MB:.1f} MB; incremental raw {r.incremental.raw_bytes / MB:.1f} MB, "
        f"stored {r.incremental.stored_bytes / MB:.1f} MB"
    )
    for label, rest in (("full", r.restore_full), ("chain", r.restore_chain)):
        agent = r.agent.get(f"create-{rest.instance_id}:ensure")
        agent_text = (
            f", agent {agent:.2f} s ({rest.raw_bytes / agent / MB:.0f} MB/s)" if agent else ""
        )
        print(
            f"  restore of the {label}: {rest.raw_bytes / MB:.0f} MB raw in {rest.seconds:.2f} s "
            f"to ACTIVE ({rest.mb_s:.0f} MB/s, {rest.mb_s / r.data.mb_s:.2f}x raw copy)"
            f"{agent_text}"
        )


# -- main ------------------------------------------------------------------------------------


def server_env(size: int, store_json: str | None) -> dict[str, str]:
    """Verification on; quotas for a source and two restores of this size at once."""
    env = {
        "COFFER_VERIFY_BACKUPS": "true",
        "COFFER_DEFAULT_QUOTA_VOLUMES_GB": str(max(40, 4 * volume_for(size))),
        "COFFER_MAX_VOLUME_GB": str(max(100, volume_for(size))),
    }
    if store_json is not None:
        env["COFFER_BACKUP_STORE"] = store_json
    return env


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000, help="data to load, MB (1000)")
    parser.add_argument("--datastore", choices=[*DATASTORES, "all"], default="all", help="(all)")
    parser.add_argument("--store", choices=["directory", "swift"], default="directory")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per datastore (1)")
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the server's data dir (logs) at the end"
    )
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.repeat < 1:
        parser.error("--size-mb and --repeat must be at least 1")
    if os.geteuid() != 0:
        parser.error("run as root (the raw baseline mounts XFS images)")
    if args.store == "swift" and not swift_installed():
        parser.error("--store swift needs Debian's swift and memcached packages")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    size = int(args.size_mb * MB)
    names = list(DATASTORES) if args.datastore == "all" else [args.datastore]
    wanted = [DATASTORES[n] for n in names]
    with ExitStack() as stack:
        store_json = None
        if args.store == "swift":
            cluster = SwiftCluster()
            stack.callback(cluster.stop)
            cluster.start()
            store_json = cluster.swift_config(SWIFT_CONTAINER).model_dump_json()
        run = stack.enter_context(
            bench_run(keep_server_data=args.keep_data, server_env=server_env(size, store_json))
        )
        results = []
        lags: dict[str, Lag] = {}
        for store in wanted:
            if not installed(store):
                print(f"{store.label} {store.version} is not installed here: skipped")
                continue
            rounds, lags[store.type] = bench_datastore(run, store, size, args.repeat)
            results.append((store, rounds))
        report(results, lags, args.store)
        if args.repeat > 1:
            for store, rounds in results:
                ratio = statistics.median(r.full.mb_s / r.data.mb_s for r in rounds)
                print(f"{store.label}: median backup / raw copy over rounds {ratio:.2f}")


if __name__ == "__main__":
    main()
