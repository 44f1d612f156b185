"""Host file and process helpers for an engine run as an unprivileged OS user.

The agent runs as root; everything an engine reads or writes is owned by the engine user
and private to it (directories 0700, files 0600). Processes started for the engine user
get its primary group only (no supplementary groups), so permission checks here use the
owner, the primary group and "other" bits (POSIX ACLs are not considered).

Engine tools (``run_tool``, ``run_as``, ``stream_out``, ``stream_in``) run as the
instance's account with its primary group only, umask 077, working directory ``/`` and
the whole environment ``tool_env`` builds (nothing of the agent's own environment, so no
secret of the agent reaches a tool). ``run_tool`` returns a short-lived tool's whole
output; the streaming ones drain stderr as the tool runs and keep only its tail. An
``EngineError`` for a failed tool ends with that tail. Passwords never go on a tool's
command line: they go in 0600 option files (``write_private_file``).
"""

from __future__ import annotations

import collections
import os
import pwd
import stat
import subprocess
import threading
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from coffer.errors import EngineError

__all__ = [
    "CHUNK_BYTES",
    "EngineUser",
    "ToolResult",
    "check_traversable",
    "chown_tree",
    "make_private_dir",
    "run_as",
    "run_tool",
    "stream_in",
    "stream_out",
    "tool_env",
    "write_all",
    "write_private_file",
]

#: The size of the pieces ``stream_out`` and ``stream_in`` copy.
CHUNK_BYTES = 1 << 20
#: Characters of a tool's output quoted in an ``EngineError``.
_STDERR_TAIL = 2000


@dataclass(frozen=True)
class EngineUser:
    """The unprivileged OS account engines run as."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def lookup(cls, name: str) -> EngineUser:
        """Resolve ``name`` in the user database; ``EngineError`` if there is no such user."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise EngineError(f"engine user {name!r} does not exist on this host") from None
        return cls(name=name, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)

    def can_traverse(self, path: Path) -> bool:
        """Whether this user (primary group only) may search directory ``path``."""
        info = os.stat(path)
        if self.uid == 0:
            return True
        if info.st_uid == self.uid:
            return bool(info.st_mode & stat.S_IXUSR)
        if info.st_gid == self.gid:
            return bool(info.st_mode & stat.S_IXGRP)
        return bool(info.st_mode & stat.S_IXOTH)


def check_traversable(path: Path, user: EngineUser) -> None:
    """Raise ``EngineError`` naming the first directory from ``/`` down to ``path`` (an
    existing directory) that ``user`` cannot search."""
    resolved = path.resolve()
    for directory in (*reversed(resolved.parents), resolved):
        if not user.can_traverse(directory):
            raise EngineError(
                f"engine user {user.name!r} cannot traverse {str(directory)!r}; "
                "grant it search permission (e.g. chmod o+x) or choose another directory"
            )


def make_private_dir(path: Path, user: EngineUser) -> None:
    """Ensure ``path`` is a directory owned by ``user`` with mode 0700. Idempotent."""
    path.mkdir(mode=0o700, exist_ok=True)
    os.chown(path, user.uid, user.gid)
    os.chmod(path, 0o700)


def write_private_file(path: Path, text: str, user: EngineUser) -> None:
    """Atomically replace ``path`` with ``text``, owned by ``user``, mode 0600."""
    temporary = path.with_name(f".{path.name}.coffer-tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chown(temporary, user.uid, user.gid)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def tool_env(user: EngineUser, **extra: str) -> dict[str, str]:
    """The whole environment of a tool run as ``user``: its ``HOME``, ``PATH`` of the
    system directories, a UTF-8 C locale (untranslated, parseable messages), and
    ``extra`` (e.g. ``PGPASSFILE``) on top."""
    env = {"HOME": user.home, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    env.update(extra)
    return env


@dataclass(frozen=True)
class ToolResult:
    """How a tool run by ``run_tool`` ended; its output decoded as UTF-8 (bad bytes
    replaced)."""

    returncode: int
    stdout: str
    stderr: str


def run_tool(
    user: EngineUser, argv: Sequence[str], *, extra_env: Mapping[str, str] | None = None
) -> ToolResult:
    """Run ``argv`` to completion as ``user`` with an empty stdin; its exit status and
    output, whatever the status (judging it is the caller's job). Blocks until it exits.
    ``EngineError`` only if it cannot be started at all."""
    process = _spawn(
        user, argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, extra_env=extra_env
    )
    try:
        stdout, stderr = process.communicate()
    except BaseException:
        process.kill()
        process.wait()
        raise
    return ToolResult(
        process.returncode,
        stdout.decode("utf-8", errors="replace"),
        stderr.decode("utf-8", errors="replace"),
    )


def run_as(
    user: EngineUser,
    argv: Sequence[str],
    *,
    what: str,
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """Run ``argv`` to completion as ``user`` (see ``run_tool``).

    Raises ``EngineError`` starting with ``what`` and ending with the tail of stderr if the
    command fails. Blocks until it exits.
    """
    result = run_tool(user, argv, extra_env=extra_env)
    if result.returncode != 0:
        # some tools (mariadb-install-db) report their errors on stdout
        tail = (result.stdout.strip()[-_STDERR_TAIL // 2 :] + " | " + result.stderr.strip())[
            -_STDERR_TAIL:
        ]
        raise EngineError(f"{what} failed (exit {result.returncode}): {tail}")


def stream_out(
    user: EngineUser,
    argv: Sequence[str],
    sink: BinaryIO,
    *,
    what: str,
    extra_env: Mapping[str, str] | None = None,
    keep_stderr: int = _STDERR_TAIL,
) -> str:
    """Run ``argv`` as ``user`` (stdin empty), copying its stdout to ``sink`` in
    ``CHUNK_BYTES`` pieces as it comes; nothing is staged. Return the last
    ``keep_stderr`` bytes of its stderr (decoded; stderr is drained meanwhile, so a
    chatty tool never blocks).

    Blocks until the tool exits. If it fails: ``EngineError`` starting with ``what`` and
    ending with its stderr tail. If ``sink`` raises (or the thread is interrupted), the
    tool is killed and reaped and that exception propagates unchanged.
    """
    process = _spawn(
        user, argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, extra_env=extra_env
    )
    tail = _StderrTail(process.stderr, keep_stderr)
    assert process.stdout is not None
    try:
        with process.stdout:
            while chunk := process.stdout.read(CHUNK_BYTES):
                write_all(sink, chunk)
    except BaseException:
        _abort(process, tail)
        raise
    return _finish(process, tail, what)


def stream_in(
    user: EngineUser,
    argv: Sequence[str],
    source: BinaryIO,
    *,
    what: str,
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """Run ``argv`` as ``user`` with ``source`` read to its end, in ``CHUNK_BYTES``
    pieces, into its stdin (its stdout is discarded).

    Blocks until the tool exits, then reads what the tool left of ``source`` (its checks
    run to the end). If it fails, or stops reading early and then fails:
    ``EngineError`` starting with ``what`` and ending with its stderr tail. If ``source``
    raises (e.g. ``IntegrityError`` for a tampered backup), the tool is killed and reaped
    and that exception propagates unchanged; what the tool wrote meanwhile is the
    caller's to remove.
    """
    process = _spawn(
        user, argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, extra_env=extra_env
    )
    tail = _StderrTail(process.stderr, _STDERR_TAIL)
    stdin = process.stdin
    assert stdin is not None
    try:
        while chunk := source.read(CHUNK_BYTES):
            stdin.write(chunk)
        stdin.close()
    except BrokenPipeError:
        pass  # the tool stopped reading: its exit status says why
    except BaseException:
        _abort(process, tail)
        raise
    _finish(process, tail, what)
    # a tool may stop at its own end marker (tar's zero blocks) before the source's end:
    # read the rest, so the source's own checks (a sealed stream's last frame) still run
    while source.read(CHUNK_BYTES):
        pass


def write_all(sink: BinaryIO, data: bytes) -> None:
    """``sink.write`` until all of ``data`` is taken (a raw sink may take less at once)."""
    view = memoryview(data)
    while view:
        taken = sink.write(view)
        view = view[len(view) if taken is None else taken :]


def _spawn(
    user: EngineUser,
    argv: Sequence[str],
    *,
    stdin: int,
    stdout: int,
    extra_env: Mapping[str, str] | None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as ``user``; its stderr is a pipe the caller must drain."""
    try:
        return subprocess.Popen(
            list(argv),
            user=user.uid,
            group=user.gid,
            extra_groups=[],
            umask=0o077,
            env=tool_env(user, **(extra_env or {})),
            cwd="/",
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise EngineError(f"cannot run {argv[0]!r}: {exc.strerror}") from None


class _StderrTail:
    """Drains a tool's stderr in a thread, keeping at most its last ``limit`` bytes."""

    def __init__(self, stream: IO[bytes] | None, limit: int) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._limit = limit
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        with stream:
            while chunk := os.read(stream.fileno(), 65536):
                self._chunks.append(chunk)
                self._size += len(chunk)
                while self._size - len(self._chunks[0]) >= self._limit:
                    self._size -= len(self._chunks.popleft())

    def text(self) -> str:
        """What was kept, once the tool has closed its stderr (blocks until then)."""
        self._thread.join()
        return b"".join(self._chunks)[-self._limit :].decode("utf-8", errors="replace")


def _finish(process: subprocess.Popen[bytes], tail: _StderrTail, what: str) -> str:
    """Wait for ``process``; its stderr tail, or ``EngineError`` with it if it failed."""
    if process.stdin is not None:
        with suppress(OSError):
            process.stdin.close()
    returncode = process.wait()
    log = tail.text()
    if returncode != 0:
        raise EngineError(f"{what} failed (exit {returncode}): {log.strip()[-_STDERR_TAIL:]}")
    return log


def _abort(process: subprocess.Popen[bytes], tail: _StderrTail) -> None:
    """Kill ``process`` (if it still runs), close its pipes and reap it."""
    with suppress(OSError):
        process.kill()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            with suppress(OSError):
                pipe.close()
    process.wait()
    tail.text()


def hand_over(root: Path, previous_uid: int, user: EngineUser) -> None:
    """Give every file and directory under ``root`` owned by ``previous_uid`` (another
    instance's account, in a copy of its volume) to ``user``; others (root's) stay."""
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = os.path.join(directory, name)
            if os.lstat(path).st_uid == previous_uid:
                os.chown(path, user.uid, user.gid, follow_symlinks=False)


def chown_tree(root: Path, user: EngineUser) -> None:
    """Give ``root`` and everything under it to ``user`` (symlinks not followed)."""
    os.chown(root, user.uid, user.gid)
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.chown(os.path.join(directory, name), user.uid, user.gid, follow_symlinks=False)
