"""Foreground engine servers started by hand as the engine user, for the bare baselines.

A server runs as the unprivileged ``coffer`` user (its primary group only, ``HOME=/tmp``)
in a new session (so a terminal's Ctrl-C reaches the benchmark, whose clean-up stops the
server), with its working directory in the caller's run directory (so the benchmark's
safety net, which kills every process whose command line or working directory is under
its scratch dir, finds it) and its output appended to a log file.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.bare_postgres import ENGINE_USER

__all__ = ["exit_reason", "spawn_as_engine", "stop_process"]

_ENGINE_ENV = {"HOME": "/tmp", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
_LOG_TAIL_CHARS = 2000


def spawn_as_engine(argv: Sequence[str], *, cwd: Path, log_file: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the engine user without waiting; stdout and stderr to ``log_file``."""
    with open(log_file, "ab") as out:
        return subprocess.Popen(
            list(argv),
            user=ENGINE_USER,
            group=ENGINE_USER,
            extra_groups=[],
            env=_ENGINE_ENV,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen[bytes] | None, *, timeout: float = 60) -> None:
    """SIGTERM (the engines' clean shutdown) and wait; SIGKILL if it takes too long. A
    no-op for ``None`` or a process that has already exited."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def exit_reason(proc: subprocess.Popen[bytes] | None, log_file: Path, what: str) -> str | None:
    """Why the server will never answer (it exited: code and log tail), or None while it
    runs. Meant as the ``abort`` callback of the connection waits."""
    if proc is None or proc.poll() is None:
        return None
    try:
        tail = log_file.read_text(errors="replace")[-_LOG_TAIL_CHARS:]
    except OSError:
        tail = ""
    return f"{what} exited with {proc.returncode}; end of {log_file}:\n{tail}"
