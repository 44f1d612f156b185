"""Pre-initialised data directories shared by engines: build once, clone per instance.

A template is built in a ``.partial`` sibling and renamed into place, and so is each
clone, so a crash never leaves a half-made directory under its final name. Clones use
``cp --reflink=auto`` (copy-on-write where the filesystem allows, a copy elsewhere) and
are then given to the instance's own OS account.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from coffer.engines.host import EngineUser, check_traversable, chown_tree, make_private_dir
from coffer.errors import EngineError

__all__ = ["clone_template", "ensure_template", "exclusive_lock", "fsync_dir"]


def ensure_template(
    *, templates_dir: Path, name: str, user: EngineUser, build: Callable[[Path], None]
) -> Path:
    """``templates_dir/name``, built first by ``build(partial_dir)`` if absent.

    ``build`` fills an empty directory owned by ``user`` (mode 0700). Safe to call from
    several processes at once: builders serialise on a lock file. Blocks while building.
    """
    target = templates_dir / name
    if target.is_dir():
        return target
    templates_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    check_traversable(templates_dir, user)
    with exclusive_lock(templates_dir / f".{name}.lock"):
        if not target.is_dir():
            partial = _partial(target)
            shutil.rmtree(partial, ignore_errors=True)
            make_private_dir(partial, user)
            build(partial)
            os.rename(partial, target)
            fsync_dir(target.parent)
    return target


def clone_template(
    template: Path, data_dir: Path, *, user: EngineUser, sync: Callable[[Path], None]
) -> None:
    """Copy ``template`` to ``data_dir`` (absent) atomically and durably, owned by ``user``.

    ``sync(partial_dir)`` must make the copy durable (e.g. ``initdb --sync-only``) before
    it is renamed into place. The caller must hold the instance's lock: the ``.partial``
    sibling is shared.
    """
    partial = _partial(data_dir)
    shutil.rmtree(partial, ignore_errors=True)
    argv = ["cp", "-a", "--reflink=auto", "--", str(template), str(partial)]
    copied = subprocess.run(argv, capture_output=True, text=True, check=False)
    if copied.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise EngineError(f"copying the data directory template failed: {copied.stderr.strip()}")
    chown_tree(partial, user)
    os.chmod(partial, 0o700)
    sync(partial)
    os.rename(partial, data_dir)
    fsync_dir(data_dir.parent)


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


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
