"""Automatic failover: measured recovery time and lost writes when a source's host dies.

Starts its own Coffer server whose local agent is not restarted when it dies
(``COFFER_LOCAL_AGENT_RESTART_S=0``) and a second host (``tests.support.hosts.ExtraHost``,
a real ``coffer agent`` on 127.0.0.2), with the product's failover settings unless told
otherwise. Per datastore, ``--rounds`` times, on a fresh replica set:

1. creates a source and a replica (placed on the other host) through the REST API; in
   odd rounds the source is on the server's own host, in even rounds on the second host
   (a planned switchover moves it there when placement put it elsewhere); turns
   ``auto_failover`` on and waits until the replica reports it is streaming and the
   seed backup is gone, so that nothing else runs during the measurement;
2. starts a writer thread that commits one numbered row (``ticks.n``) about every 10 ms on
   the source, as the instance's user over TCP through the engine's client library
   (psycopg, PyMySQL), and records every acknowledged commit's number and time; after
   an error it drops the connection and tries again (with the next number) every 10 ms;
3. after ``STEADY_S`` of writes, kills -9 the agent of the source's host and then every
   engine process under the source's instance directory, as the end-to-end test does;
4. polls the API every 20 ms until the replica no longer shows ``replica_of`` (the
   failover is recorded after the promotion), then points the writer at it, and
   measures (all from the kill): *detected* (the server log's "is lost ... failing
   over"), *API shows* (the replica shown as the source), *RTO* (the first acknowledged
   write on the new source), and *to writable* (API shows → that write);
5. lost writes: numbers acknowledged by the old source that the new source lacks;
6. brings the dead host back (a second host's agent restarts; for the server's own host
   the server is killed -9 and restarted, which starts a new local agent) and measures
   *rejoin*: restart → the old source ACTIVE as a replica of the new one and holding a
   row the writer committed on the new source after it was seen so;
7. stops the writer and deletes the set (replicas first).

Replication is asynchronous: a commit the source acknowledged just before it died may
never have reached the replica, so losses are possible in principle; the figures say
what happened here. A round that fails is reported and the next one runs. Prints
figures; asserts nothing; stops and removes everything (writer, instances, both hosts)
also on errors and Ctrl-C. Needs root.

    .venv/bin/python bench/failover.py [--datastore postgresql|mariadb|all] [--rounds 5]
        [--heartbeat-s 1.0] [--failover-after-s 2.5] [--keep-data]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import os
import re
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pymysql  # type: ignore[import-untyped,unused-ignore]
from tests.support.api import delete_instances
from tests.support.hosts import ExtraHost
from tests.support.processes import CofferServer, processes_under

from bench.bare_postgres import ENGINE_USER
from bench.coffer_run import DATABASE, PASSWORD, USER, BenchRun, bench_run, instance_body
from bench.coffer_run import wait_active as wait_active_at
from coffer import engines
from coffer.settings import ServerSettings

#: the writer's pace, and its pause before trying again after an error
WRITE_EVERY_S = 0.01
RETRY_S = 0.01
API_POLL_S = 0.02
#: writes on the healthy set before the kill
STEADY_S = 2.0
CREATE_TIMEOUT_S = 180.0
FAILOVER_TIMEOUT_S = 120.0
REJOIN_TIMEOUT_S = 240.0
RTO_GOAL_S = 5.0
TABLE = "ticks"
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


# -- datastores: a connection as the instance's user ----------------------------------------


def _pg_connect(host: str, port: int) -> Any:
    return psycopg.connect(
        host=host,
        port=port,
        user=USER,
        password=PASSWORD,
        dbname=DATABASE,
        autocommit=True,
        connect_timeout=2,
    )


def _mariadb_connect(host: str, port: int) -> Any:
    return pymysql.connect(
        host=host,
        port=port,
        user=USER,
        password=PASSWORD,
        database=DATABASE,
        autocommit=True,
        connect_timeout=2,
        read_timeout=5,
        write_timeout=5,
    )


@dataclass(frozen=True)
class Datastore:
    type: str
    version: str
    label: str
    #: an autocommit DB-API connection as ``USER`` to ``DATABASE`` at (host, port)
    connect: Callable[[str, int], Any]


DATASTORES = {
    "postgresql": Datastore("postgresql", "15", "PostgreSQL", _pg_connect),
    "mariadb": Datastore("mariadb", "10.11", "MariaDB", _mariadb_connect),
}


def installed(store: Datastore) -> bool:
    """Whether this host has ``store``'s version (asked the way the agent asks)."""
    engine = engines.engine(store.type, engine_user=ENGINE_USER, templates_dir="/nonexistent")
    return store.version in engine.lifecycle.installed_versions()


@contextmanager
def session(store: Datastore, address: Address) -> Iterator[Any]:
    conn = store.connect(address.host, address.port)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def numbers_on(store: Datastore, address: Address) -> set[int]:
    """Every ``ticks.n`` the instance at ``address`` holds."""
    with session(store, address) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT n FROM {TABLE}")
        return {int(row[0]) for row in cur.fetchall()}


def highest_on(store: Datastore, address: Address) -> int:
    with session(store, address) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT max(n) FROM {TABLE}")
        row = cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0


# -- the writer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @classmethod
    def of(cls, inst: dict[str, Any]) -> Address:
        return cls(str(inst["ip"][0]), int(inst["port"]))


@dataclass(frozen=True)
class Ack:
    """Commit ``n`` acknowledged by the instance at ``address`` at monotonic ``at``."""

    n: int
    at: float
    address: Address


class Writer:
    """Commits rows 1, 2, ... into ``ticks`` about every ``WRITE_EVERY_S`` on the current
    target over one kept connection; on any error drops it and tries again (with the next
    number) after ``RETRY_S``. Records every acknowledged commit and every number tried,
    per target. ``retarget`` is safe from another thread; ``stop`` joins the thread."""

    def __init__(self, store: Datastore, target: Address) -> None:
        self._store, self._target = store, target
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._acks: list[Ack] = []
        self._tried: dict[Address, set[int]] = {}
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)

    def retarget(self, target: Address) -> None:
        with self._lock:
            self._target = target

    def acks(self, address: Address | None = None) -> list[Ack]:
        with self._lock:
            return [a for a in self._acks if address is None or a.address == address]

    def tried(self, address: Address) -> set[int]:
        with self._lock:
            return set(self._tried.get(address, ()))

    def _run(self) -> None:
        n, conn, on = 0, None, None
        while not self._stopping.is_set():
            with self._lock:
                target = self._target
            n += 1
            try:
                if conn is None or on != target:
                    self._close(conn)
                    conn, on = None, target
                    conn = self._store.connect(target.host, target.port)
                    with conn.cursor() as cur:
                        cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (n BIGINT PRIMARY KEY)")
                with self._lock:
                    self._tried.setdefault(target, set()).add(n)
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {TABLE} (n) VALUES (%s)", (n,))
                acked = time.monotonic()
                with self._lock:
                    self._acks.append(Ack(n, acked, target))
                self._stopping.wait(WRITE_EVERY_S)
            except Exception:  # the engine is gone or read-only: try again soon
                self.errors += 1
                self._close(conn)
                conn = None
                self._stopping.wait(RETRY_S)
        self._close(conn)

    @staticmethod
    def _close(conn: Any) -> None:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


@contextmanager
def writing(store: Datastore, target: Address) -> Iterator[Writer]:
    writer = Writer(store, target)
    writer.start()
    try:
        yield writer
    finally:
        writer.stop()


# -- one round --------------------------------------------------------------------------------


@dataclass
class Round:
    died: str = ""  # "local" or "second": the host that held the source
    rto_s: float | None = None
    detected_s: float | None = None  # kill → the monitor's decision (server log)
    shown_s: float | None = None  # kill → API shows the replica as the source
    writable_s: float | None = None  # API shows → first acknowledged write
    acked_before: int = 0
    lost: list[int] = field(default_factory=list)
    in_doubt_kept: int = 0  # tried on the old source, not acknowledged, yet present
    rejoin_s: float | None = None
    error: str = ""


@dataclass
class Hosts:
    server: CofferServer
    second: ExtraHost


def eventually(check: Callable[[], Any], what: str, timeout: float, poll_s: float) -> Any:
    """``check()``'s first truthy result; errors count as "not yet"."""
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            if result := check():
                return result
        except Exception as exc:
            last = exc
        time.sleep(poll_s)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s (last error: {last!r})")


def show(c: httpx.Client, iid: str) -> dict[str, Any]:
    return dict(c.get(f"/instances/{iid}").raise_for_status().json()["instance"])


def create_set(c: httpx.Client, store: Datastore, name: str, made: list[str]) -> tuple[str, str]:
    """A source and its replica, both ACTIVE; (source id, replica id)."""
    body = instance_body(name, datastore=store.type, version=store.version)
    r = c.post("/instances", json=body)
    r.raise_for_status()
    source = str(r.json()["instance"]["id"])
    made.append(source)
    wait_active_at(c, source, timeout=CREATE_TIMEOUT_S, poll_s=0.1)
    r = c.post("/instances", json={"instance": {"name": f"{name}-r", "replica_of": source}})
    r.raise_for_status()
    replica = str(r.json()["instance"]["id"])
    made.append(replica)
    wait_active_at(c, replica, timeout=CREATE_TIMEOUT_S, poll_s=0.1)
    return source, replica


def source_host(hosts: Hosts, source: str) -> str:
    """Which host holds ``source``: "local" (the server's) or "second"."""
    return "second" if hosts.second.instance_dir(source).exists() else "local"


def place_source(c: httpx.Client, hosts: Hosts, ids: tuple[str, str], want: str) -> tuple[str, str]:
    """The set with its source on the ``want`` host: a planned switchover when it is on the
    other one; (source id, replica id)."""
    source, replica = ids
    if source_host(hosts, source) == want:
        return ids
    r = c.post(f"/instances/{replica}/action", json={"promote_to_replica_source": {}})
    if r.status_code != 202:
        raise RuntimeError(f"switchover answered {r.status_code}: {r.text}")
    eventually(lambda: "replica_of" not in show(c, replica), "the switchover", 120, 0.1)
    for iid in ids:
        wait_active_at(c, iid, timeout=CREATE_TIMEOUT_S, poll_s=0.1)
    return replica, source


def enable_failover(c: httpx.Client, source: str) -> None:
    r = c.put(f"/instances/{source}", json={"instance": {"auto_failover": True}})
    if r.status_code != 202:
        raise RuntimeError(f"turning auto_failover on answered {r.status_code}: {r.text}")


def wait_quiet(c: httpx.Client, replica: str) -> None:
    """Until the replica reports streaming and no backup (the seed) is listed."""
    eventually(
        lambda: show(c, replica).get("replication", {}).get("streaming") is True,
        "the replica streaming",
        60,
        0.1,
    )
    eventually(lambda: not c.get("/backups").json()["backups"], "the seed backup gone", 60, 0.2)


def kill_source(hosts: Hosts, source: str) -> str:
    """Kill -9 the agent of the source's host, then the source's engine processes; which
    host it was ("local" or "second")."""
    on_second = source_host(hosts, source) == "second"
    root = (
        hosts.second.instance_dir(source)
        if on_second
        else hosts.server.data_dir / "agent" / "instances" / source
    )
    if on_second:
        hosts.second.kill9()
    else:
        agent = hosts.server.agent_pid()
        if agent is None:
            raise RuntimeError("the local agent is not running")
        os.kill(agent, signal.SIGKILL)
    pids = processes_under(root)
    if not pids:
        raise RuntimeError(f"no engine process found under {root}")
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return "second" if on_second else "local"


def decided_at(server: CofferServer, source: str) -> float | None:
    """The wall-clock time the server logged its decision to fail ``source`` over."""
    needle = f"instance {source} is lost"
    with contextlib.suppress(OSError):
        for line in server.log_path.read_text(errors="replace").splitlines():
            if needle in line and (m := _LOG_TIME.match(line)):
                return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def fail_over(
    c: httpx.Client, hosts: Hosts, writer: Writer, ids: tuple[str, str], result: Round
) -> Address:
    """Kill the source, follow the failover, fill in ``result``; the new source's address."""
    source, replica = ids
    wall_kill, killed = time.time(), time.monotonic()
    result.died = kill_source(hosts, source)
    eventually(
        lambda: "replica_of" not in show(c, replica), "failover", FAILOVER_TIMEOUT_S, API_POLL_S
    )
    shown = time.monotonic()
    new = Address.of(show(c, replica))
    writer.retarget(new)
    first: Ack = eventually(
        lambda: next(iter(writer.acks(new)), None), "a write on the new source", 60, 0.002
    )
    result.shown_s, result.rto_s = shown - killed, first.at - killed
    result.writable_s = first.at - shown
    if (decided := decided_at(hosts.server, source)) is not None:
        result.detected_s = decided - wall_kill
    return new


def count_losses(
    store: Datastore, writer: Writer, old: Address, new: Address, result: Round
) -> None:
    acked = {a.n for a in writer.acks(old)}
    present = numbers_on(store, new)
    result.acked_before = len(acked)
    result.lost = sorted(acked - present)
    result.in_doubt_kept = len((writer.tried(old) - acked) & present)


def bring_back(hosts: Hosts, died: str) -> None:
    if died == "second":
        hosts.second.start()
    else:  # the server starts a new local agent when it starts
        hosts.server.kill9()
        hosts.server.restart()


def rejoin(
    c: httpx.Client, store: Datastore, hosts: Hosts, writer: Writer, ids: tuple[str, str], died: str
) -> float:
    """Bring the dead host back; seconds until the old source follows the new one and
    holds a row committed on the new source after that was seen."""
    source, replica = ids
    new = Address.of(show(c, replica))
    started = time.monotonic()
    bring_back(hosts, died)

    def following() -> dict[str, Any] | None:
        inst = show(c, source)
        ok = (
            inst["status"] == "ACTIVE"
            and inst.get("replica_of", {}).get("id") == replica
            and inst.get("replication", {}).get("streaming") is True
        )
        return inst if ok else None

    old = eventually(following, "the old source following", REJOIN_TIMEOUT_S, API_POLL_S)
    seen = time.monotonic()
    mark: Ack = eventually(
        lambda: next((a for a in writer.acks(new) if a.at > seen), None),
        "a write after the old source came back",
        30,
        0.005,
    )
    eventually(
        lambda: highest_on(store, Address.of(old)) >= mark.n,
        "the old source receiving writes",
        REJOIN_TIMEOUT_S,
        API_POLL_S,
    )
    return time.monotonic() - started


def ensure_hosts_up(hosts: Hosts) -> None:
    """After a failed round: both hosts' agents run again."""
    if hosts.second.proc is None:
        hosts.second.start()
    if hosts.server.agent_pid() is None:
        bring_back(hosts, "local")


def one_round(run: BenchRun, hosts: Hosts, store: Datastore, index: int) -> Round:
    result = Round()
    made: list[str] = []
    with run.server.admin().client(timeout=10) as c:
        try:
            ids = create_set(c, store, f"fo-{store.type}-{index}", made)
            ids = place_source(c, hosts, ids, "local" if index % 2 else "second")
            enable_failover(c, ids[0])
            wait_quiet(c, ids[1])
            old = Address.of(show(c, ids[0]))
            with writing(store, old) as writer:
                eventually(lambda: writer.acks(old), "a first write", 30, 0.01)
                time.sleep(STEADY_S)
                new = fail_over(c, hosts, writer, ids, result)
                count_losses(store, writer, old, new, result)
                result.rejoin_s = rejoin(c, store, hosts, writer, ids, result.died)
        except Exception as exc:  # reported; the next round runs on fresh instances
            result.error = f"{type(exc).__name__}: {exc}{faults(c, made)}"
            ensure_hosts_up(hosts)
        finally_delete(c, made)
    return result


def faults(c: httpx.Client, ids: Sequence[str]) -> str:
    """What the API shows of ``ids``' status and faults, for a failed round's report."""
    shown = []
    for iid in ids:
        with contextlib.suppress(Exception):
            inst = show(c, iid)
            fault = inst.get("fault", {}).get("message", "")
            shown.append(f"{iid[:8]} {inst['status']} {fault}".rstrip())
    return f" [{'; '.join(shown)}]" if shown else ""


def finally_delete(c: httpx.Client, made: list[str]) -> None:
    try:
        delete_instances(c, ids=reversed(made), timeout=180)
    except (AssertionError, httpx.HTTPError) as exc:
        print(f"warning: deleting {', '.join(made)} failed: {exc}", file=sys.stderr)


# -- report -----------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _summary(label: str, values: Sequence[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return f"{label} —"
    return f"{label} median {statistics.median(got):.2f} max {max(got):.2f}"


def report(store: Datastore, rounds: Sequence[Round]) -> None:
    print(f"\n{store.label} {store.version}: failover after the source's host dies (seconds)")
    header = (
        f"{'round':>5} {'host':>7} {'RTO':>7} {'detected':>9} {'API shows':>10} "
        f"{'→writable':>10} {'acked':>7} {'lost':>5} {'rejoin':>7}"
    )
    print(header)
    print("-" * len(header))
    for i, r in enumerate(rounds, 1):
        if r.error and r.rto_s is None:
            print(f"{i:>5} failed: {r.error}")
            continue
        print(
            f"{i:>5} {r.died:>7} {_s(r.rto_s):>7} {_s(r.detected_s):>9} {_s(r.shown_s):>10} "
            f"{_s(r.writable_s):>10} {r.acked_before:>7} {len(r.lost):>5} {_s(r.rejoin_s):>7}"
        )
        if r.lost:
            print(f"      lost acknowledged numbers: {r.lost[:20]}")
        if r.error:
            print(f"      then failed: {r.error}")
    ok = [r for r in rounds if r.rto_s is not None]
    print(
        "  "
        + "; ".join(
            (
                _summary("RTO", [r.rto_s for r in ok]),
                _summary("API shows", [r.shown_s for r in ok]),
                _summary("rejoin", [r.rejoin_s for r in ok]),
            )
        )
    )
    lost = sum(len(r.lost) for r in ok)
    acked = sum(r.acked_before for r in ok)
    doubt = sum(r.in_doubt_kept for r in ok)
    within = sum(1 for r in ok if r.rto_s is not None and r.rto_s <= RTO_GOAL_S)
    print(
        f"  goal RTO ≤ {RTO_GOAL_S:.0f} s: met in {within} of {len(rounds)} round(s); "
        f"goal 0 lost: {lost} of {acked} acknowledged commit(s) lost "
        f"({doubt} unacknowledged in-flight commit(s) survived)"
    )


def explain(args: argparse.Namespace) -> None:
    print(
        f"Settings: heartbeat every {args.heartbeat_s} s, failover after {args.failover_after_s} s "
        f"silent, checked every {args.failover_check_s} s. The writer commits one row every "
        f"~{WRITE_EVERY_S * 1000:.0f} ms as the instance's user over TCP."
    )
    print(
        "RTO: kill → first acknowledged write on the new source; detected: kill → the "
        "server's decision (its log); API shows: kill → the replica shown without "
        "replica_of (after the promotion); →writable: API shows → that first write; "
        "lost: commits the old source acknowledged that the new source lacks; rejoin: "
        "dead host restarted → old source ACTIVE, following, and holding a newer write."
    )
    print(
        "Replication is asynchronous: commits acknowledged in the source's last moment may "
        "be lost in principle; the figures are what was measured here."
    )


# -- main -------------------------------------------------------------------------------------


def server_env(args: argparse.Namespace) -> dict[str, str]:
    return {
        "COFFER_LOCAL_AGENT_RESTART_S": "0",
        "COFFER_HEARTBEAT_INTERVAL_S": str(args.heartbeat_s),
        "COFFER_FAILOVER_AFTER_S": str(args.failover_after_s),
        "COFFER_FAILOVER_CHECK_S": str(args.failover_check_s),
    }


def _default(name: str) -> float:
    value = ServerSettings.model_fields[name].default
    assert isinstance(value, float)
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--datastore", choices=[*DATASTORES, "all"], default="all", help="(all)")
    parser.add_argument("--rounds", type=int, default=5, help="failovers per datastore (5)")
    for flag, name in (
        ("--heartbeat-s", "heartbeat_interval_s"),
        ("--failover-after-s", "failover_after_s"),
        ("--failover-check-s", "failover_check_s"),
    ):
        parser.add_argument(
            flag, type=float, default=_default(name), help=f"({_default(name)}, the default)"
        )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the server's data dir (logs) at the end"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if min(args.heartbeat_s, args.failover_after_s, args.failover_check_s) <= 0:
        parser.error("--heartbeat-s, --failover-after-s and --failover-check-s must be > 0")
    if os.geteuid() != 0:
        parser.error("run as root (the agents run engines as their own users)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    names = list(DATASTORES) if args.datastore == "all" else [args.datastore]
    stores = [DATASTORES[n] for n in names if installed(DATASTORES[n])]
    if not stores:
        raise SystemExit("no selected engine is installed here")
    explain(args)
    started = time.monotonic()
    with ExitStack() as stack:
        run = stack.enter_context(
            bench_run(keep_server_data=args.keep_data, server_env=server_env(args))
        )
        second = ExtraHost(run.server)
        stack.callback(second.stop)  # before the server stops
        second.start()
        hosts = Hosts(run.server, second)
        for store in stores:
            rounds = []
            for i in range(args.rounds):
                r = one_round(run, hosts, store, i + 1)
                where = f"source on the {r.died} host" if r.died else "no kill"
                print(
                    f"  {store.label} round {i + 1}: {where}, RTO {_s(r.rto_s)} s, "
                    f"lost {len(r.lost)}, rejoin {_s(r.rejoin_s)} s"
                    + (f"; {r.error}" if r.error else "")
                )
                rounds.append(r)
            report(store, rounds)
    print(f"Total run time: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted (writer stopped, hosts and server stopped)", file=sys.stderr)
        sys.exit(130)
