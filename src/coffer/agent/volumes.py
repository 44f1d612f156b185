"""Instance volumes: a real filesystem of the requested size where the host allows it.

* ``LoopVolumes`` — one sparse image file per instance, formatted XFS and loop-mounted at
  the instance's root: writes past the size fail with ENOSPC instead of filling the host,
  and ``grow`` enlarges the filesystem online. The images live in a host "pool": one big
  sparse XFS image (reflink on) loop-mounted under the agent's state directory, so a new
  volume is a reflink copy of a pre-filled template image (an engine's data directory
  already in place): instant, and sharing blocks until written.
* ``DirectoryVolumes`` — a plain directory; the size is only accounted (reported usage
  against the requested size), for hosts where loop devices or XFS are unavailable.

``detect`` tries the first and falls back to the second, saying why. Every method is
idempotent; they block (run them in a thread).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from coffer.agent.store import disk_usage_bytes
from coffer.engines.templates import exclusive_lock
from coffer.errors import EngineError, NotImplementedByDatastore

log = logging.getLogger("coffer.agent.volumes")

_GB = 1024**3
#: xfsprogs refuses filesystems smaller than this
_XFS_MIN_BYTES = 300 * 1024**2


@dataclass(frozen=True)
class Usage:
    used_bytes: int
    total_bytes: int


class Volumes(Protocol):
    mode: str

    def template(self, name: str, fill: Callable[[Path], None]) -> Path | None:
        """A volume image named ``name`` pre-filled once by ``fill(mount_point)``, for
        ``attach`` to clone; None where this kind of volume has no templates."""
        ...

    def attach(self, instance_id: str, root: Path, size_gb: int, template: Path | None) -> None:
        """Make ``root`` a mounted volume of ``size_gb`` (created on first use, as a
        clone of ``template`` when given)."""

    def clone(self, source_id: str, source_root: Path, instance_id: str, size_gb: int) -> None:
        """Create ``instance_id``'s volume (for ``attach`` to mount) as a point-in-time
        copy of the mounted volume of ``source_id`` at ``source_root``; the source's
        writes pause only for the moment of the copy. Does nothing if the volume exists.
        ``NotImplementedByDatastore`` where volumes cannot be cloned so."""

    def grow(self, instance_id: str, root: Path, size_gb: int) -> None:
        """Enlarge the volume online to ``size_gb`` (never shrinks)."""

    def usage(self, root: Path, size_gb: int) -> Usage: ...

    def remove(self, instance_id: str, root: Path) -> None:
        """Unmount and delete the volume (its engine must be stopped)."""

    def reattach_all(self, instances_dir: Path) -> None:
        """After a host restart, mount every volume that exists (agent start-up)."""

    def detach_all(self, instances_dir: Path) -> None:
        """Unmount every volume (agent shutdown, engines stopped); data stays."""


class DirectoryVolumes:
    mode = "directory"

    def template(self, name: str, fill: Callable[[Path], None]) -> Path | None:
        return None

    def attach(self, instance_id: str, root: Path, size_gb: int, template: Path | None) -> None:
        root.mkdir(parents=True, exist_ok=True)

    def clone(self, source_id: str, source_root: Path, instance_id: str, size_gb: int) -> None:
        raise NotImplementedByDatastore(
            "instant clones need XFS volumes; this host keeps plain directories"
        )

    def grow(self, instance_id: str, root: Path, size_gb: int) -> None:
        return None

    def usage(self, root: Path, size_gb: int) -> Usage:
        return Usage(disk_usage_bytes(root), size_gb * _GB)

    def remove(self, instance_id: str, root: Path) -> None:
        shutil.rmtree(root, ignore_errors=True)

    def reattach_all(self, instances_dir: Path) -> None:
        return None

    def detach_all(self, instances_dir: Path) -> None:
        return None


class LoopVolumes:
    mode = "xfs-loop"

    def __init__(self, state_dir: Path) -> None:
        self.pool = state_dir / "pool"
        self.pool_image = state_dir / "pool.img"
        _mount_pool(self.pool_image, self.pool)
        self.images_dir = self.pool / "volumes"
        self.templates_dir = self.pool / "templates"
        for directory in (self.images_dir, self.templates_dir):
            directory.mkdir(exist_ok=True)
            os.chmod(directory, 0o755)  # engine accounts traverse to their templates

    def image(self, instance_id: str) -> Path:
        return self.images_dir / f"{instance_id}.img"

    def template(self, name: str, fill: Callable[[Path], None]) -> Path | None:
        target = self.templates_dir / f"{name}.img"
        if target.exists():
            return target
        with exclusive_lock(self.templates_dir / f".{name}.lock"):
            if target.exists():
                return target
            partial = target.with_suffix(".partial")
            mnt = self.templates_dir / f".{name}.mnt"
            partial.unlink(missing_ok=True)
            _make_xfs(partial, _XFS_MIN_BYTES)
            mnt.mkdir(exist_ok=True)
            _run(["mount", "-o", "loop,noatime", str(partial), str(mnt)], "mount")
            try:
                os.chmod(mnt, 0o755)
                fill(mnt)
            finally:
                _unmount(mnt)
                mnt.rmdir()
            os.rename(partial, target)
        return target

    def attach(self, instance_id: str, root: Path, size_gb: int, template: Path | None) -> None:
        image = self.image(instance_id)
        if not image.exists():
            partial = image.with_suffix(".partial")
            if template is None:
                _make_xfs(partial, size_gb * _GB)
            else:
                _run(["cp", "--reflink=always", str(template), str(partial)], "cp --reflink")
                _truncate(partial, size_gb * _GB)
            os.rename(partial, image)
        root.mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(root):
            _run(["mount", "-o", _INSTANCE_MOUNT, str(image), str(root)], "mount")
            _run(["xfs_growfs", str(root)], "xfs_growfs")  # a clone starts at its template's size
        os.chmod(root, 0o755)

    def clone(self, source_id: str, source_root: Path, instance_id: str, size_gb: int) -> None:
        """Freeze the source's filesystem (``xfs_freeze``: its dirty data is flushed and
        writes wait), reflink-copy its image (blocks shared: milliseconds whatever the
        size), thaw it — always, also on failure — then size the copy."""
        image = self.image(instance_id)
        if image.exists():
            return
        partial = image.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        _run(["xfs_freeze", "-f", str(source_root)], "xfs_freeze")
        try:
            _run(["cp", "--reflink=always", str(self.image(source_id)), str(partial)], "cp")
        finally:
            _run(["xfs_freeze", "-u", str(source_root)], "xfs_freeze")
        if partial.stat().st_size < size_gb * _GB:
            _truncate(partial, size_gb * _GB)
        os.rename(partial, image)

    def grow(self, instance_id: str, root: Path, size_gb: int) -> None:
        image = self.image(instance_id)
        if image.stat().st_size >= size_gb * _GB:
            return
        _truncate(image, size_gb * _GB)
        device = _loop_device(image)
        _run(["losetup", "-c", device], "losetup")
        _run(["xfs_growfs", str(root)], "xfs_growfs")

    def usage(self, root: Path, size_gb: int) -> Usage:
        st = os.statvfs(root)
        return Usage((st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize)

    def remove(self, instance_id: str, root: Path) -> None:
        _unmount(root)
        shutil.rmtree(root, ignore_errors=True)
        self.image(instance_id).unlink(missing_ok=True)

    def reattach_all(self, instances_dir: Path) -> None:
        _mount_pool(self.pool_image, self.pool)
        for image in sorted(self.images_dir.glob("*.img")):
            root = instances_dir / image.stem
            root.mkdir(parents=True, exist_ok=True)
            if not os.path.ismount(root):
                _run(["mount", "-o", _INSTANCE_MOUNT, str(image), str(root)], "mount")

    def detach_all(self, instances_dir: Path) -> None:
        for image in sorted(self.images_dir.glob("*.img")):
            _unmount(instances_dir / image.stem)
        _unmount(self.pool)


def detect(state_dir: Path, forced: str = "auto") -> Volumes:
    """The best volume kind this host permits (``forced`` = 'xfs-loop' or 'directory')."""
    if forced == "directory":
        return DirectoryVolumes()
    reason = _loop_xfs_problem(state_dir)
    if reason is None:
        log.info("volumes: XFS images on loop devices, cloned by reflink from templates")
        return LoopVolumes(state_dir)
    if forced == "xfs-loop":
        raise EngineError(f"XFS loop volumes were asked for but are unavailable: {reason}")
    log.warning("volumes: plain directories with usage accounting (%s)", reason)
    return DirectoryVolumes()


def _loop_xfs_problem(state_dir: Path) -> str | None:
    if shutil.which("mkfs.xfs") is None or shutil.which("xfs_growfs") is None:
        return "xfsprogs is not installed"
    if os.geteuid() != 0:
        return "the agent does not run as root"
    probe = Path(tempfile.mkdtemp(prefix=".volume-probe-", dir=state_dir))
    try:
        image, mnt = probe / "probe.img", probe / "mnt"
        mnt.mkdir()
        _truncate(image, _XFS_MIN_BYTES)
        _run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], "mkfs.xfs")
        _run(["mount", "-o", "loop", str(image), str(mnt)], "mount")
        _unmount(mnt)
        return None
    except EngineError as exc:
        return exc.message
    finally:
        with contextlib.suppress(EngineError):
            _unmount(probe / "mnt")
        shutil.rmtree(probe, ignore_errors=True)


#: clones of one template share its filesystem UUID, which XFS refuses twice by default
_INSTANCE_MOUNT = "loop,noatime,nouuid"
#: the pool is sparse: it takes host space only as volumes are written (and discard
#: gives deleted blocks back)
_POOL_BYTES = 256 * _GB


def _mount_pool(image: Path, pool: Path) -> None:
    if os.path.ismount(pool):
        return
    if not image.exists():
        partial = image.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        _make_xfs(partial, _POOL_BYTES)
        os.rename(partial, image)
    pool.mkdir(exist_ok=True)
    _run(["mount", "-o", "loop,noatime,discard", str(image), str(pool)], "mount")
    os.chmod(pool, 0o755)


def _make_xfs(path: Path, size: int) -> None:
    _truncate(path, size)
    _run(["mkfs.xfs", "-q", "-m", "reflink=1", str(path)], "mkfs.xfs")


def _truncate(path: Path, size: int) -> None:
    with open(path, "ab") as f:
        f.truncate(max(size, _XFS_MIN_BYTES))


def _loop_device(image: Path) -> str:
    out = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True, check=False)
    line = out.stdout.strip().splitlines()
    if not line:
        raise EngineError(f"no loop device is attached to {image}")
    return line[0].split(":", 1)[0]


def _unmount(root: Path) -> None:
    """Unmount ``root`` if mounted, retrying while it is briefly busy."""
    for _ in range(50):
        if not os.path.ismount(root):
            return
        res = subprocess.run(["umount", str(root)], capture_output=True, text=True, check=False)
        if res.returncode == 0:
            return
        time.sleep(0.1)
    raise EngineError(f"could not unmount {root}: still busy")


def _run(argv: list[str], what: str) -> None:
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise EngineError(f"{what} failed (exit {res.returncode}): {res.stderr.strip()[-300:]}")
