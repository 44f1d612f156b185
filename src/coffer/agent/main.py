"""``coffer agent``: independent runnables under one TaskGroup.

* poller     — long-polls for commands, runs each in its own task, posts results
* reporter   — heartbeats with observed engine state and volume usage
* log shipper — ships the change logs of running instances (``agent.logship``)
* activity   — the engines' activity counters as rates, for heartbeats (``agent.activity``)
* supervisors — one per instance (created by the executor), owning the engine process

SIGTERM/SIGINT stop every engine cleanly before the agent exits. The agent holds an
exclusive lock on ``<state_dir>/agent.lock`` (holding its pid) for its whole life.

Blocking work is kept apart so that none of it waits behind another kind: commands run on
the loop's default executor (``_COMMAND_THREADS``, not Python's cpus + 4), background
probes on the supervisors' own pool, and each usage sweep as one job on a thread of its
own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import httpx

from coffer.agent import limits, osusers, volumes
from coffer.agent.activity import ActivityWatch
from coffer.agent.control import ControlClient, NotRegistered
from coffer.agent.executor import Executor, volume_note
from coffer.agent.logship import ROUND_S, ArchiveTarget, LogShipping
from coffer.agent.store import InstanceStore
from coffer.agent.supervisor import EngineSupervisor
from coffer.agent.volumes import Usage
from coffer.contracts.agent_v1 import (
    AgentCommand,
    CommandResult,
    Heartbeat,
    InstanceObservation,
    RegisterRequest,
)
from coffer.domain.states import ServiceStatus
from coffer.errors import CofferError, error_code
from coffer.settings import AgentSettings

log = logging.getLogger("coffer.agent")

#: threads for command work (the default executor): a backup or a restore holds one for
#: its whole length, so a handful of them must not stall every other command
_COMMAND_THREADS = 32
#: engines in these states have their change log shipped
_SHIPPING_STATES = frozenset({ServiceStatus.HEALTHY, ServiceStatus.BLOCKED})


class Agent:
    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(settings.state_dir, 0o755)  # the engine user traverses it to its data
        self.store = InstanceStore(settings.instances_dir)
        self.volumes = volumes.detect(settings.state_dir, settings.volume_mode)
        self.limits = limits.detect(settings.limits_mode)
        settings.templates_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(settings.templates_dir, 0o755)
        self.executor = Executor(
            store=self.store,
            volumes=self.volumes,
            limits=self.limits,
            read_only_at=settings.volume_read_only_at,
            writable_below=settings.volume_writable_below,
            engine_user=settings.engine_user,
            templates_dir=str(settings.templates_dir),
            host_name=settings.host_name,
            scratch_dir=settings.state_dir / "scratch",
        )
        self.control = ControlClient(settings.server_url, settings.state_dir / "credential.json")
        self._running: dict[str, asyncio.Task[None]] = {}
        self._interval = settings.heartbeat_interval_s
        self._usage: dict[str, int] = {}
        self.shipping = LogShipping()
        #: instance id → its engine's replication state (``ReplicaState`` as a dict)
        self._replication: dict[str, dict[str, object]] = {}
        self.activity = ActivityWatch(self.executor, self.store, lambda: self._interval)

    async def run(self, stop: asyncio.Event) -> None:
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=_COMMAND_THREADS, thread_name_prefix="coffer-command")
        )
        # first, so that their volumes are not mistaken for instances' below
        await self.executor.verifier.sweep()
        await asyncio.to_thread(self.volumes.reattach_all, self.store.root)
        live = {spec.instance_id for spec in self.store.all()}
        for name in await asyncio.to_thread(osusers.sweep, self.store.root, live):
            log.info("removed the account %s of an instance that no longer exists", name)
        sources = frozenset(
            spec.instance_id for spec in self.store.all() if spec.replication_role == "primary"
        )
        async with asyncio.TaskGroup() as tg:
            await self.executor.resume(tg, hold=sources)
            workers = [
                tg.create_task(self._settle_held(sources), name="held-sources"),
                tg.create_task(self._poller(tg), name="poller"),
                tg.create_task(self._reporter(), name="reporter"),
                tg.create_task(self._usage_scanner(), name="usage"),
                tg.create_task(self._log_shipper(), name="log-shipper"),
                tg.create_task(self._replication_watch(), name="replication"),
                tg.create_task(self.activity.run(), name="activity"),
                tg.create_task(self.executor.warm_up(), name="warm-up"),
            ]
            await stop.wait()
            log.info("stopping: shutting down %d engine(s)", len(self.executor.supervisors))
            for task in [*workers, *self._running.values()]:
                task.cancel()
            self.shipping.close()
            for sup in list(self.executor.supervisors.values()):
                await sup.close()
        await asyncio.to_thread(self.volumes.detach_all, self.store.root)
        await self.control.aclose()

    def facts(self) -> dict[str, str]:
        return {"volumes": self.volumes.mode, "limits": self.limits.mode}

    async def _ensure_registered(self) -> None:
        if self.control.credential:
            return
        if not self.settings.join_token:
            raise NotRegistered("no host credential and no join token (COFFER_AGENT_JOIN_TOKEN)")
        resp = await self.control.register(
            RegisterRequest(
                join_token=self.settings.join_token,
                host_name=self.settings.host_name,
                address=self.settings.advertise_host,
                engines=await asyncio.to_thread(self.executor.installed),
                facts=self.facts(),
            )
        )
        self._interval = resp.heartbeat_interval_s
        log.info("registered as host %s", resp.host_id)

    async def _poller(self, tg: asyncio.TaskGroup) -> None:
        while True:
            try:
                await self._ensure_registered()
                resp = await self.control.poll(list(self._running), self.settings.poll_wait_s)
            except NotRegistered as exc:
                log.warning("%s; retrying", exc)
                self.control.credential = None
                await asyncio.sleep(1.0)
                continue
            except httpx.HTTPError as exc:
                log.warning("control plane unreachable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            for cmd in resp.commands:
                if cmd.id not in self._running:
                    self._running[cmd.id] = tg.create_task(self._run_command(cmd), name=cmd.id)

    async def _run_command(self, cmd: AgentCommand) -> None:
        started = time.monotonic()
        log.info("command %s (%s) started", cmd.id, cmd.kind.value)
        try:
            result = CommandResult(ok=True, result=await self.executor.execute(cmd))
        except CofferError as exc:
            result = CommandResult(ok=False, error_code=error_code(exc), error_message=exc.message)
        except Exception as exc:
            log.exception("command %s failed unexpectedly", cmd.id)
            result = CommandResult(
                ok=False,
                error_code="EngineError",
                error_message=f"agent error: {type(exc).__name__}",
            )
        result.seconds = round(time.monotonic() - started, 3)
        if result.ok:
            log.info("command %s finished ok=True in %.2fs", cmd.id, result.seconds)
        else:
            log.warning(
                "command %s finished ok=False in %.2fs: %s: %s",
                cmd.id,
                result.seconds,
                result.error_code,
                result.error_message,
            )
        while True:
            try:
                await self.control.result(cmd.id, result)
                break
            except (httpx.HTTPError, NotRegistered):
                await asyncio.sleep(0.5)
        self._running.pop(cmd.id, None)

    async def _reporter(self) -> None:
        engines = await asyncio.to_thread(self.executor.installed)
        while True:
            hb = Heartbeat(
                seq=time.time_ns(),
                instances=[
                    InstanceObservation(
                        instance_id=iid,
                        service_status=sup.status.value,
                        detail=volume_note(self._usage.get(iid), sup.spec)
                        if sup.spec.read_only
                        else "",
                        seq=time.time_ns(),
                        volume_used_bytes=self._usage.get(iid),
                        backup_bytes=self.executor.backup_progress.get(iid),
                        restorable_until=self.shipping.restorable_until(iid),
                        replication=self._replication.get(iid),
                        activity=self.activity.current.get(iid),
                        restarts=sup.restarts,
                    )
                    for iid, sup in list(self.executor.supervisors.items())
                ],
                engines=engines,
                facts=self.facts(),
            )
            if not self.control.credential:
                await asyncio.sleep(0.1)
                continue
            with contextlib.suppress(httpx.HTTPError, NotRegistered):
                resp = await self.control.heartbeat(hb)
                self._interval = resp.heartbeat_interval_s
            await asyncio.sleep(self._interval)

    async def _settle_held(self, sources: frozenset[str]) -> None:
        """Ask the control plane (until it answers) which held sources are sources
        still, and run those; the others were failed over while the agent was away."""
        if not sources:
            return
        while True:
            with contextlib.suppress(httpx.HTTPError, NotRegistered):
                answer = await self.control.roles(sorted(sources))
                break
            await asyncio.sleep(1.0)
        for iid in sources - set(answer.demoted):
            self.executor.release(iid)
        for iid in answer.demoted:
            try:
                await self.executor.demote(iid)
            except (OSError, CofferError) as exc:
                log.error("could not fence the replaced source %s: %s", iid, exc)

    async def _log_shipper(self) -> None:
        """A shipping round per running instance with a change log each ``ROUND_S``;
        archive targets are asked for when an instance has none (every few seconds: it
        gets one with its first full backup) and refreshed every minute."""
        fetched, refreshed = 0.0, 0.0
        while True:
            live = {
                iid: sup
                for iid, sup in list(self.executor.supervisors.items())
                if sup.status in _SHIPPING_STATES and self.executor.engine(sup.spec.engine).logs
            }
            self.shipping.forget(set(live))
            now = time.monotonic()
            lacking = any(not self.shipping.has_target(iid) for iid in live)
            if live and (now - refreshed > 60 or (lacking and now - fetched > 3)):
                fetched = now
                with contextlib.suppress(httpx.HTTPError, NotRegistered):
                    answer = await self.control.log_archives(sorted(live))
                    # an instance left out has no full backup (any more): nothing to ship
                    self.shipping.forget(set(answer.archives))
                    for iid, data in answer.archives.items():
                        self.shipping.set_target(iid, ArchiveTarget.parse(data))
                    refreshed = now
            for iid, sup in live.items():
                archive = self.executor.engine(sup.spec.engine).logs
                if archive is not None:
                    self.shipping.start_round(iid, archive, self.store.paths(iid), sup.spec)
            await asyncio.sleep(ROUND_S)

    async def _replication_watch(self) -> None:
        """The replication state of every instance in a replica set, for heartbeats
        (asked of the engines on a small pool of their own, every heartbeat interval)."""
        pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="coffer-replication")
        loop = asyncio.get_running_loop()
        try:
            while True:
                asked = {
                    iid: sup
                    for iid, sup in list(self.executor.supervisors.items())
                    if sup.spec.replication_role and sup.status in _SHIPPING_STATES
                }
                for iid in set(self._replication) - set(asked):
                    del self._replication[iid]
                for iid, sup in asked.items():
                    try:
                        state = await loop.run_in_executor(pool, self._replica_state, iid, sup)
                    except (OSError, CofferError) as exc:
                        state = {"role": "unknown", "detail": str(exc)[:300]}
                    self._replication[iid] = state
                await asyncio.sleep(self._interval)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _replica_state(self, iid: str, sup: EngineSupervisor) -> dict[str, object]:
        replication = self.executor.engine(sup.spec.engine).replication
        if replication is None:
            return {"role": "unknown", "detail": "the engine has no replication"}
        return dataclasses.asdict(replication.state(self.store.paths(iid), sup.spec))

    async def _usage_scanner(self) -> None:
        """Volume usage for heartbeats, and the read-only guard of nearly full volumes.

        Each sweep measures every volume in one job on a thread of its own (a slow
        filesystem walk delays the next sweep, never a command), then applies the guard.
        """
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coffer-usage")
        try:
            while True:
                await self._sweep_usage(pool)
                await asyncio.sleep(self.settings.volume_check_s)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # never hold up the agent's exit

    async def _sweep_usage(self, pool: ThreadPoolExecutor) -> None:
        volumes = {
            iid: (self.store.paths(iid).root, sup.spec.volume_gb)
            for iid, sup in list(self.executor.supervisors.items())
        }
        measured = await asyncio.get_running_loop().run_in_executor(pool, self._measure, volumes)
        for iid, usage in measured.items():
            self._usage[iid] = usage.used_bytes
            try:
                await self.executor.guard_volume(iid, usage)
            except (OSError, CofferError) as exc:
                log.warning("volume check of %s failed: %s", iid, exc)
        for iid in set(self._usage) - set(self.executor.supervisors):
            del self._usage[iid]

    def _measure(self, volumes: dict[str, tuple[Path, int]]) -> dict[str, Usage]:
        """Usage of each volume (blocks); one that cannot be measured is left out."""
        out = {}
        for iid, (root, size_gb) in volumes.items():
            try:
                out[iid] = self.volumes.usage(root, size_gb)
            except (OSError, CofferError) as exc:
                log.warning("volume check of %s failed: %s", iid, exc)
        return out


def _hold_lock(settings: AgentSettings) -> IO[str]:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    f = open(settings.state_dir / "agent.lock", "a+")  # noqa: SIM115 - held for life
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another agent already runs for {settings.state_dir}") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def run_agent(settings: AgentSettings) -> None:
    os.umask(0o077)  # state files are private; shared directories are chmod-ed explicitly
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    lock = _hold_lock(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Agent(settings).run(stop)

    try:
        asyncio.run(main())
    finally:
        with contextlib.suppress(OSError):
            lock.close()
