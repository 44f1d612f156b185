"""Real Coffer processes for tests and benchmarks: start, wait until ready, stop cleanly.

A ``CofferServer`` runs ``coffer server`` (which starts its local agent) with its own data
directory, API port and engine port range. ``stop()`` leaves nothing behind: the server,
the agent, every engine process and the data directory are gone afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from coffer.agent import osusers

ROOT = Path(__file__).resolve().parents[2]
COFFER = [sys.executable, "-m", "coffer.cli.main"]
_blocks = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_FIRST_PORT, _LAST_PORT = 23000, 31999  # below 23000: engine integration tests' ranges


def _worker_blocks(size: int) -> range:
    """This xdist worker's own share of the port blocks (the whole range without xdist)."""
    total = (_LAST_PORT - _FIRST_PORT + 1) // size
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    share = total // max(workers, 1)
    return range(index * share, (index + 1) * share)


_first_block = random.Random(os.getpid()).randrange(1 << 16)


def engine_port_range(size: int = 40) -> str:
    """A block of engine ports below the ephemeral range (23000-31999), one per server.

    Each xdist worker draws from its own share of blocks, from a random start per process
    (so other test runs on the machine rarely meet the same ports either).
    """
    blocks = _worker_blocks(size)
    block = blocks[(_first_block + next(_blocks)) % len(blocks)]
    base = _FIRST_PORT + block * size
    return f"{base}-{base + size - 1}"


def short_tmpdir(prefix: str) -> Path:
    """A short directory under /tmp the engine user can traverse (unix socket paths are short)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@dataclass
class Credentials:
    endpoint: str
    project_id: str
    token: str

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.endpoint,
            headers={"X-Auth-Token": self.token, "Accept": "application/json"},
            timeout=timeout,
        )


@dataclass
class CofferServer:
    data_dir: Path = field(default_factory=lambda: short_tmpdir("cf-"))
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("COFFER_ENDPOINT", None)
        env.pop("COFFER_TOKEN", None)
        env.update(
            COFFER_DATA_DIR=str(self.data_dir),
            COFFER_PORT_RANGE=self.env.get("COFFER_PORT_RANGE") or engine_port_range(),
            COFFER_HEARTBEAT_INTERVAL_S="0.5",
            # a metrics history sample every second (15 s by default): charts fill quickly
            COFFER_METRICS_SAMPLE_INTERVAL_S="1",
        )
        env.update(self.env)
        return env

    def start(self, timeout: float = 60.0) -> CofferServer:
        self.env.setdefault("COFFER_PORT_RANGE", engine_port_range())
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [*COFFER, "server", "--port", str(self.port)],
                env=self.environ(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(ROOT),
                start_new_session=True,  # a terminal's Ctrl-C must not stop it mid-cleanup
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the API answers and the local agent has sent a heartbeat."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"coffer server exited early:\n{self.log_tail()}")
            if self._agent_alive():
                return
            time.sleep(0.1)
        raise TimeoutError(f"coffer server not ready in {timeout}s:\n{self.log_tail()}")

    def _agent_alive(self) -> bool:
        try:
            with self.admin().client(timeout=2) as c:
                hosts = c.get("/mgmt/hosts").json()["hosts"]
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            return False
        return any(h["alive"] for h in hosts)

    def admin(self) -> Credentials:
        data = json.loads((self.data_dir / "credentials.json").read_text())
        return Credentials(data["endpoint"], data["project_id"], data["token"])

    def new_project(self, name: str) -> Credentials:
        with self.admin().client() as c:
            r = c.post("/mgmt/projects", json={"project": {"name": name}})
            r.raise_for_status()
            d = r.json()["credentials"]
        return Credentials(d["endpoint"], d["project_id"], d["token"])

    def cli(
        self, *args: str, check: bool = True, creds: Credentials | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        env = self.environ()
        if creds is not None:
            env.update(COFFER_ENDPOINT=creds.endpoint, COFFER_TOKEN=creds.token)
        res = subprocess.run(
            [*COFFER, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(ROOT),
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"coffer {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
            )
        return res

    def agent_pid(self) -> int | None:
        path = self.data_dir / "agent" / "agent.lock"
        with contextlib.suppress(OSError, ValueError):
            pid = int(path.read_text().strip())
            os.kill(pid, 0)
            return pid
        return None

    def restart(self, timeout: float = 60.0) -> CofferServer:
        """Start again on the same data directory and port (after ``kill9`` or ``stop``)."""
        return self.start(timeout)

    def kill9(self) -> None:
        """Crash the server (its agent and engines keep running, as after a real crash)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def stop(self, *, remove: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        kill_everything_under(self.data_dir)
        unmount_everything_under(self.data_dir)
        remove_empty_cgroups()
        osusers.sweep(self.data_dir / "agent" / "instances", live=set())
        if remove:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for path in (self.log_path, self.data_dir / "agent.log"):
            with contextlib.suppress(OSError):
                out.append(
                    f"--- {path.name}\n"
                    + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                )
        return "\n".join(out)


def processes_under(directory: Path) -> list[int]:
    """pids whose command line or working directory mentions ``directory``."""
    needle = str(directory)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = (
                Path(f"/proc/{entry}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
            environ = Path(f"/proc/{entry}/environ").read_bytes().decode(errors="replace")
            cwd = os.readlink(f"/proc/{entry}/cwd")
            if (
                needle in cmdline
                or needle in cwd
                or f"COFFER_DATA_DIR={needle}\0" in environ + "\0"
            ):
                pids.append(int(entry))
    return pids


def unmount_everything_under(directory: Path) -> None:
    """Teardown: lazily unmount volumes left mounted under ``directory`` (deepest first)."""
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p.startswith(f"{directory}/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def remove_empty_cgroups() -> None:
    """Teardown: drop instance cgroups with no process left (busy ones refuse rmdir)."""
    for parent in Path("/sys/fs/cgroup").glob("*/coffer"):
        for group in parent.iterdir():
            if group.is_dir():
                with contextlib.suppress(OSError):
                    group.rmdir()


def kill_everything_under(directory: Path) -> list[int]:
    """Safety net for teardown: SIGKILL every process belonging to ``directory``."""
    pids = processes_under(directory)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 10
    while time.monotonic() < end and processes_under(directory):
        time.sleep(0.05)
    return pids


def port_is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@contextlib.contextmanager
def running_server(**env: str) -> Iterator[CofferServer]:
    server = CofferServer(env=dict(env))
    try:
        yield server.start()
    finally:
        server.stop()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
