"""Pre-initialised data directories: built once per version with initdb, then cloned.

``initdb`` takes about a second and writes ~40 MB; a clone with ``cp --reflink=auto`` is a
copy-on-write snapshot on filesystems that support it and a plain copy elsewhere. Both
are built in a ``.partial`` sibling and renamed into place, so a crash never leaves a
half-made directory under the final name; a stale ``.partial`` is removed by the next
builder, which holds a lock while it works.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from coffer.engines.postgresql.catalog import INTERNAL_SUPERUSER
from coffer.engines.postgresql.host import EngineUser, check_traversable, make_private_dir, run_as
from coffer.errors import EngineError

__all__ = ["clone_template", "ensure_template", "exclusive_lock"]

_INITDB_OPTIONS = (
    "-U",
    INTERNAL_SUPERUSER,
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "-E",
    "UTF8",
    "--locale=C.UTF-8",
    "--no-instructions",
)


def ensure_template(*, templates_dir: Path, version: str, bin_dir: Path, user: EngineUser) -> Path:
    """The template data directory for ``version``, built first if absent.

    Safe to call from several processes at once: builders serialise on a lock file and
    all but the first find the template ready. Blocks for the duration of ``initdb``.
    """
    target = templates_dir / f"postgresql-{version}"
    if target.is_dir():
        return target
    templates_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    check_traversable(templates_dir, user)
    with exclusive_lock(templates_dir / f".postgresql-{version}.lock"):
        if not target.is_dir():
            _build_template(target, bin_dir=bin_dir, user=user)
    return target


def _build_template(target: Path, *, bin_dir: Path, user: EngineUser) -> None:
    partial = _partial(target)
    shutil.rmtree(partial, ignore_errors=True)
    make_private_dir(partial, user)
    run_as(user, [str(bin_dir / "initdb"), "-D", str(partial), *_INITDB_OPTIONS], what="initdb")
    os.rename(partial, target)
    _fsync_dir(target.parent)


def clone_template(template: Path, data_dir: Path, *, bin_dir: Path, user: EngineUser) -> None:
    """Copy ``template`` to ``data_dir`` (absent) atomically, durably, owner preserved.

    The caller must hold the instance's lock: the ``.partial`` sibling is shared.
    """
    partial = _partial(data_dir)
    shutil.rmtree(partial, ignore_errors=True)
    argv = ["cp", "-a", "--reflink=auto", "--", str(template), str(partial)]
    copied = subprocess.run(argv, capture_output=True, text=True, check=False)
    if copied.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise EngineError(f"copying the data directory template failed: {copied.stderr.strip()}")
    _chown_tree(partial, user)
    os.chmod(partial, 0o700)
    run_as(user, [str(bin_dir / "initdb"), "--sync-only", "-D", str(partial)], what="sync")
    os.rename(partial, data_dir)
    _fsync_dir(data_dir.parent)


def _chown_tree(root: Path, user: EngineUser) -> None:
    """Give the whole copy to the instance's own user (the template has another owner)."""
    os.chown(root, user.uid, user.gid)
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.chown(os.path.join(directory, name), user.uid, user.gid, follow_symlinks=False)


@contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created if needed). Blocks."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
