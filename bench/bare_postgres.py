"""PostgreSQL clusters run by hand as the engine user, outside Coffer, for comparison.

Everything runs as the unprivileged ``coffer`` user with its primary group only and
``HOME=/tmp``. Directories a cluster writes (data dir, socket and log dir) are created
owned by that user; their parent must be traversable by it (mode 0755 under /tmp).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coffer.engines.postgresql.catalog import INTERNAL_SUPERUSER

# The exact initdb options Coffer's engine builds its template with (a private name, read
# on purpose so that a change there shows up here).
from coffer.engines.postgresql.template import _INITDB_OPTIONS as COFFER_INITDB_OPTIONS

__all__ = [
    "COFFER_INITDB_OPTIONS",
    "ENGINE_USER",
    "PG_BIN",
    "BarePostgres",
    "free_low_port",
    "make_engine_dir",
    "run_as_engine",
]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ENGINE_USER = "coffer"
_ENGINE_ENV = {"HOME": "/tmp", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def run_as_engine(
    argv: Sequence[str], *, timeout: float = 120, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion as the engine user; ``RuntimeError`` with stderr on failure."""
    result = subprocess.run(
        list(argv),
        user=ENGINE_USER,
        group=ENGINE_USER,
        extra_groups=[],
        env={**_ENGINE_ENV, **(env or {})},
        cwd="/tmp",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def make_engine_dir(path: Path) -> Path:
    """Create ``path`` owned by the engine user, mode 0700 (as Coffer does)."""
    path.mkdir(mode=0o700)
    shutil.chown(path, ENGINE_USER, ENGINE_USER)
    return path


def free_low_port(low: int = 20000, high: int = 29999) -> int:
    """A port that binds now on 127.0.0.1, below the ephemeral range."""
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


@dataclass
class BarePostgres:
    """One cluster: ``data_dir`` (absent until ``initdb``) and ``run_dir`` for its unix
    socket, log and password file. ``password`` is the internal superuser's, usable over
    TCP (initdb's own pg_hba.conf asks scram-sha-256 on loopback)."""

    data_dir: Path
    run_dir: Path
    port: int
    password: str
    settings: dict[str, str] = field(default_factory=dict)
    bin_dir: Path = PG_BIN

    @property
    def log_file(self) -> Path:
        return self.run_dir / "postgresql.log"

    def initdb(self) -> None:
        """``initdb`` with Coffer's options plus a superuser password. Blocks."""
        pwfile = self.run_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        make_engine_dir(self.data_dir)
        shutil.chown(pwfile, ENGINE_USER, ENGINE_USER)
        try:
            argv = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir)]
            run_as_engine([*argv, *COFFER_INITDB_OPTIONS, f"--pwfile={pwfile}"])
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self) -> None:
        """``pg_ctl start`` without waiting (callers poll a connection themselves).

        Port, socket directory and ``settings`` go on the command line, so they win over
        every configuration file in the data directory."""
        options = [f"-p {self.port}", f"-k {self.run_dir}"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        argv = [str(self.bin_dir / "pg_ctl"), "start", "-W", "-D", str(self.data_dir)]
        run_as_engine([*argv, "-l", str(self.log_file), "-o", " ".join(options)])

    def stop(self) -> None:
        """``pg_ctl stop -m fast``, waiting; a no-op if the cluster is not running."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        argv = [str(self.bin_dir / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(self.data_dir)]
        run_as_engine(argv)

    def tcp_conninfo(self, dbname: str = "postgres") -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": INTERNAL_SUPERUSER,
            "password": self.password,
            "dbname": dbname,
        }
