"""Host file and process helpers for an engine run as an unprivileged OS user.

The agent runs as root; everything an engine reads or writes is owned by the engine user
and private to it (directories 0700, files 0600). Processes started for the engine user
get its primary group only (no supplementary groups), so permission checks here use the
owner, the primary group and "other" bits (POSIX ACLs are not considered).
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coffer.errors import EngineError

__all__ = [
    "EngineUser",
    "check_traversable",
    "chown_tree",
    "make_private_dir",
    "run_as",
    "write_private_file",
]

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


def run_as(user: EngineUser, argv: Sequence[str], *, what: str) -> None:
    """Run ``argv`` to completion as ``user`` (no supplementary groups, clean environment).

    Raises ``EngineError`` starting with ``what`` and ending with the tail of stderr if the
    command fails. Blocks until it exits.
    """
    env = {"HOME": user.home, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    result = subprocess.run(
        list(argv),
        user=user.uid,
        group=user.gid,
        extra_groups=[],
        env=env,
        cwd="/",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        # some tools (mariadb-install-db) report their errors on stdout
        tail = (result.stdout.strip()[-_STDERR_TAIL // 2 :] + " | " + result.stderr.strip())[
            -_STDERR_TAIL:
        ]
        raise EngineError(f"{what} failed (exit {result.returncode}): {tail}")


def chown_tree(root: Path, user: EngineUser) -> None:
    """Give ``root`` and everything under it to ``user`` (symlinks not followed)."""
    os.chown(root, user.uid, user.gid)
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.chown(os.path.join(directory, name), user.uid, user.gid, follow_symlinks=False)
