"""One supervisor per engine instance: the only owner of that engine's process.

It keeps the process in its desired state: starts it (or adopts one left running by a
previous agent), restarts it with backoff when it dies, stops it on request, and records
what it observes (``status``) for the heartbeat. The engine runs in its own session as
the unprivileged engine user, so stopping kills its whole process group.

Background probes of every supervisor on the host share one small thread pool of their
own (``probe_pool``), and a healthy engine is probed less and less often (up to every
``_HEALTHY_PROBE_MAX_S``): with a hundred idle instances, probes neither fill the
default thread pool that command work runs on nor keep it busy. A death is still seen
within ``_CHECK_S`` (the process is checked, not probed), and a probe run for a command
(``wait_accepting``) goes through the command path, never behind background probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import pwd
import signal
import time
from concurrent.futures import Executor, ThreadPoolExecutor

from coffer.agent.limits import ResourceLimits, launch_in_groups
from coffer.contracts.engine import InstanceSpec
from coffer.domain.states import ServiceStatus
from coffer.engines.base import Engine, InstancePaths
from coffer.errors import EngineError

log = logging.getLogger("coffer.agent.supervisor")

_CHECK_S = 0.25
_STOP_GRACE_S = 30.0
#: after SIGKILL, how long to wait for the group to vanish (a process stuck in the kernel
#: cannot be hurried; the caller gets an error instead of a hang)
_KILL_WAIT_S = 30.0
#: how long close() waits for the supervising loop to notice it must end
_LOOP_EXIT_S = 10.0
#: a start waited on fails after this many consecutive crashes (e.g. its port is taken)
_GIVE_UP_AFTER = 3
#: background probes: every second while an engine is not known healthy, then, while it
#: stays healthy, twice as long after each success up to this (a hung engine shows within)
_PROBE_EVERY_S = 1.0
_HEALTHY_PROBE_MAX_S = 8.0
#: threads shared by the background probes of all supervisors: a probe of a hung engine
#: holds one for its timeout (1-2 s), so a few of them hold up others' probes, not commands
_PROBE_THREADS = 4


@functools.cache
def probe_pool() -> Executor:
    """The thread pool background probes run on (one per agent process, made on first use)."""
    return ThreadPoolExecutor(max_workers=_PROBE_THREADS, thread_name_prefix="coffer-probe")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class EngineSupervisor:
    def __init__(
        self,
        engine: Engine,
        paths: InstancePaths,
        spec: InstanceSpec,
        limits: ResourceLimits,
        *,
        probes: Executor | None = None,
    ) -> None:
        """``probes``: where background probes run (default: the shared ``probe_pool``)."""
        self.engine = engine
        self._probes = probes
        self._limits = limits
        self.paths = paths
        self.spec = spec
        self._user = pwd.getpwnam(paths.os_user)
        self.status = ServiceStatus.SHUTDOWN
        self._want_running = False
        self._pid: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: held while the engine process is being started or stopped, so a stop can never
        #: miss a process that a concurrent start is still spawning
        self._process_lock = asyncio.Lock()
        self._failures = 0
        #: how often the engine died and was started again (reported in heartbeats)
        self.restarts = 0

    # -- public ------------------------------------------------------------------------

    def run_in(self, tg: asyncio.TaskGroup) -> None:
        self._task = tg.create_task(self._loop(), name=f"supervise-{self.spec.instance_id}")

    def resume(self) -> None:
        """Keep the engine running from now on without waiting (agent start-up)."""
        self._want_running = True
        self._wake.set()

    async def start(self, timeout_s: float = 60.0) -> None:
        """Want it running and wait until it accepts queries (EngineError on timeout)."""
        self._want_running = True
        self._failures = 0
        self._wake.set()
        await self.wait_accepting(timeout_s)

    async def stop(self) -> None:
        """Stop the engine and wait until its process group is gone (idempotent)."""
        self._want_running = False
        await self._terminate()
        self.status = ServiceStatus.SHUTDOWN

    async def restart(self, timeout_s: float = 60.0) -> None:
        self.status = ServiceStatus.RESTARTING
        self._want_running = False
        await self._terminate()
        await self.start(timeout_s)

    async def close(self) -> None:
        """End the supervising loop, then stop the engine (instance deleted or agent
        exiting). Nothing can restart the engine afterwards."""
        self._closed = True
        self._want_running = False
        self._wake.set()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            _, pending = await asyncio.wait({task}, timeout=_LOOP_EXIT_S)
            if pending:
                task.cancel()
                await asyncio.wait({task}, timeout=_LOOP_EXIT_S)
        await self.stop()

    async def wait_accepting(self, timeout_s: float) -> None:
        """Wait until the engine answers a probe (run on the default executor, with the
        command waiting for it); EngineError on timeout or repeated crashes."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self._pid is not None and await self._probe(None):
                self.status = self.accepting_status()
                return
            if self._failures >= _GIVE_UP_AFTER:
                raise EngineError(f"the engine exits as soon as it starts: {self.log_tail()}")
            await asyncio.sleep(0.05)
        raise EngineError(
            f"the engine did not accept connections within {timeout_s:.0f} s: {self.log_tail()}"
        )

    def accepting_status(self) -> ServiceStatus:
        return ServiceStatus.BLOCKED if self.spec.read_only else ServiceStatus.HEALTHY

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.paths.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no engine log"
        return " | ".join(text[-lines:])[-800:]

    # -- the loop ----------------------------------------------------------------------

    async def _loop(self) -> None:
        next_probe, interval = 0.0, _PROBE_EVERY_S
        while not self._closed:
            if self._want_running and (self._pid is None or not _alive(self._pid)):
                await self._bring_up()
                next_probe, interval = 0.0, _PROBE_EVERY_S  # a new process: probe it soon
            elif self._want_running and time.monotonic() >= next_probe:
                accepting = await self._probe(self._probes or probe_pool())
                if accepting:
                    self._failures = 0
                if self.status is not ServiceStatus.RESTARTING:
                    self.status = self.accepting_status() if accepting else ServiceStatus.RUNNING
                interval = _next_probe_interval(interval, accepting)
                next_probe = time.monotonic() + interval
            self._wake.clear()
            if self._closed:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CHECK_S):
                    await self._wake.wait()

    async def _bring_up(self) -> None:
        if self._pid is not None:
            log.warning("engine of %s (pid %s) died; restarting", self.spec.instance_id, self._pid)
            _kill_group(self._pid, signal.SIGKILL)
            self.status = ServiceStatus.CRASHED
            self._pid = None
            self._failures += 1
            self.restarts += 1
            await asyncio.sleep(min(0.2 * 2 ** min(self._failures, 8), 30.0))
        async with self._process_lock:
            if not self._want_running or (self._pid is not None and _alive(self._pid)):
                return  # stopped, or started by someone else, while we waited
            adopted = await asyncio.to_thread(self.engine.lifecycle.running_pid, self.paths)
            if adopted is not None:
                self._pid = adopted
                log.info("adopted running engine of %s (pid %s)", self.spec.instance_id, adopted)
                return
            try:
                await self._spawn()
                return
            except (OSError, ValueError) as exc:
                # never let one engine take the agent down: report it and retry with backoff
                log.error("could not start the engine of %s: %s", self.spec.instance_id, exc)
                self.status = ServiceStatus.FAILED
                self._failures += 1
        await asyncio.sleep(min(0.2 * 2 ** min(self._failures, 8), 30.0))

    async def _spawn(self) -> None:
        engine_argv = self.engine.lifecycle.command(self.paths, self.spec)
        env = {"HOME": self._user.pw_dir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        groups = await asyncio.to_thread(self._limits.apply, self.spec)
        uid, gid = self._user.pw_uid, self._user.pw_gid
        if groups:
            # join the flavor's groups as root, then become the instance's account: no
            # process of the engine ever runs outside its limits
            argv = launch_in_groups(groups, uid, gid, engine_argv)
            identity: dict[str, object] = {}
        else:
            argv = engine_argv
            identity = {"user": uid, "group": gid, "extra_groups": []}
        with open(self.paths.log_file, "ab") as out:
            os.chmod(self.paths.log_file, 0o640)
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=str(self.paths.root),
                env=env,
                umask=0o077,
                start_new_session=True,
                **identity,  # type: ignore[arg-type]
            )
        self._pid = self._proc.pid
        self.status = ServiceStatus.RUNNING
        asyncio.get_running_loop().create_task(self._reap(self._proc))
        log.info("started engine of %s (pid %s)", self.spec.instance_id, self._pid)

    async def _reap(self, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        self._wake.set()

    async def _terminate(self) -> None:
        async with self._process_lock:
            pid = self._pid
            if pid is None:
                pid = await asyncio.to_thread(self.engine.lifecycle.running_pid, self.paths)
            if pid is not None:
                await terminate(pid, self.engine.lifecycle.stop_signal)
            self._pid = None
            self._proc = None

    async def _probe(self, pool: Executor | None) -> bool:
        """Probe on ``pool`` (None: the loop's default executor, as commands use)."""
        loop = asyncio.get_running_loop()
        probe = await loop.run_in_executor(pool, self.engine.lifecycle.probe, self.paths, self.spec)
        return probe.accepting


def _next_probe_interval(interval: float, accepting: bool) -> float:
    """Seconds to the next background probe: back off while healthy, reset otherwise."""
    return min(interval * 2, _HEALTHY_PROBE_MAX_S) if accepting else _PROBE_EVERY_S


async def terminate(pid: int, stop_signal: signal.Signals) -> None:
    """Ask an engine to stop, wait up to the grace period, then kill its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, stop_signal)
    end = time.monotonic() + _STOP_GRACE_S
    while time.monotonic() < end and _alive(pid):
        await asyncio.sleep(0.05)
    _kill_group(pid, signal.SIGKILL)
    end = time.monotonic() + _KILL_WAIT_S
    while _group_alive(pid):
        if time.monotonic() > end:
            raise EngineError(f"engine processes {_group_members(pid)} ignore SIGKILL")
        await asyncio.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies of our own children keep the group "alive" until reaped; give them a moment
    return any(_alive(int(p)) for p in _group_members(pgid))


def _group_members(pgid: int) -> list[str]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().split(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            out.append(entry)
    return out
