"""Redis servers run by hand as the engine user, outside Coffer, for comparison.

``redis-server`` with persistence off (``--save "" --appendonly no``), in the foreground,
listening on 127.0.0.1 only, with no password (the ``default`` user; protected mode allows
loopback clients). Its working and ``dir`` directory is the caller's run directory,
owned by the engine user.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bare_process import exit_reason, spawn_as_engine, stop_process
from coffer.engines.redis.lifecycle import DEFAULT_SERVER

__all__ = ["REDIS_SERVER", "BareRedis"]

REDIS_SERVER = DEFAULT_SERVER


@dataclass
class BareRedis:
    """One server; ``run_dir`` (existing, owned by the engine user) holds its log."""

    run_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.run_dir / "redis.log"

    def start(self) -> None:
        """``redis-server`` in the foreground, without waiting (callers poll a PING)."""
        argv = [
            str(REDIS_SERVER),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.run_dir),
        ]
        self.proc = spawn_as_engine(argv, cwd=self.run_dir, log_file=self.log_file)

    def stop(self) -> None:
        """SIGTERM and wait; a no-op if it is not running."""
        stop_process(self.proc)

    def exited(self) -> str | None:
        """Why the server will never answer, or None while it runs."""
        return exit_reason(self.proc, self.log_file, "redis-server")

    def conninfo(self) -> dict[str, Any]:
        """redis-py arguments (the ``default`` user, no password)."""
        return {"host": "127.0.0.1", "port": self.port}
