"""The embedded server's own agent: a separate process speaking the normal protocol.

The agent outlives a crashed server (engines keep serving; the restarted server finds it
through the lock the agent holds and adopts it). A graceful server stop stops the agent,
which stops its engines. If the agent process dies, it is started again after
``local_agent_restart_s`` seconds.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from coffer.settings import ServerSettings

log = logging.getLogger("coffer.local_agent")

#: how often the watcher looks for a dead agent
_WATCH_POLL_S = 0.5


def agent_lock_path(state_dir: Path) -> Path:
    return state_dir / "agent.lock"


def running_agent_pid(state_dir: Path) -> int | None:
    """pid of a live agent holding the state directory's lock, else None."""
    path = agent_lock_path(state_dir)
    if not path.exists():
        return None
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            text = f.read().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(f, fcntl.LOCK_UN)
        return None


class LocalAgent:
    def __init__(self, settings: ServerSettings, *, join_token: str) -> None:
        self._settings = settings
        self._join_token = join_token
        self.state_dir = settings.data_dir / "agent"
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="local-agent", daemon=True)

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._ensure_running()
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        self._stopping.set()
        pid = running_agent_pid(self.state_dir)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and running_agent_pid(self.state_dir) is not None:
            time.sleep(0.1)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def _ensure_running(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if running_agent_pid(self.state_dir) is not None:
            return
        st = self._settings
        env = dict(os.environ)
        env.update(
            COFFER_AGENT_JOIN_TOKEN=self._join_token,
            COFFER_AGENT_SERVER_URL=f"http://{_client_host(st.host)}:{st.port}",
            COFFER_AGENT_STATE_DIR=str(self.state_dir),
            COFFER_AGENT_ENGINE_USER=st.engine_user,
            COFFER_AGENT_HEARTBEAT_INTERVAL_S=str(st.heartbeat_interval_s),
            COFFER_AGENT_ADVERTISE_HOST=_client_host(st.host),
        )
        log_path = st.data_dir / "agent.log"
        with open(log_path, "ab") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "coffer.cli.main", "agent"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        log.info("started the local agent (pid %s)", self._proc.pid)

    def _watch(self) -> None:
        """Restart the agent ``local_agent_restart_s`` seconds after it is seen dead."""
        delay = self._settings.local_agent_restart_s
        if delay <= 0:
            return
        dead_since: float | None = None
        while not self._stopping.wait(min(delay, _WATCH_POLL_S)):
            if self._proc is not None and self._proc.poll() is not None:
                self._proc = None
            if self._proc is not None or running_agent_pid(self.state_dir) is not None:
                dead_since = None
                continue
            if dead_since is None:
                dead_since = time.monotonic()
                log.warning("the local agent is not running; restarting it in %.0f s", delay)
            if time.monotonic() - dead_since < delay:
                continue
            try:
                self._ensure_running()
                dead_since = None
            except OSError:
                log.exception("could not start the local agent")
                dead_since = time.monotonic()


def _client_host(bind_host: str) -> str:
    return "127.0.0.1" if bind_host in ("0.0.0.0", "") else bind_host
