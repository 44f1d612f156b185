"""Flavor vCPUs and RAM as kernel resource limits, where the host permits.

* ``CgroupV2Limits`` — ``memory.max``, ``cpu.max``, ``pids.max`` in one group per
  instance, when the unified hierarchy has those controllers enabled;
* ``CgroupV1Limits`` — ``memory.limit_in_bytes``, ``cpu.cfs_quota_us``, ``pids.max`` in
  the v1 hierarchies (hybrid hosts, whose v2 hierarchy is empty);
* ``NoLimits`` — engine settings alone (shared_buffers, maxmemory ... from the flavor).

The engine is launched through ``launch_in_groups``: a shell joins the groups as root,
drops to the instance's account and execs the engine, so no process of it ever runs
outside its limits. ``detect`` says which mode is active.

The same groups tell what the instance uses (``usage``): CPU time so far and memory now,
read with ``agent.cgroup_usage``. On v1 the CPU time is in the ``cpuacct`` hierarchy, so
instances join a ``cpuacct`` group too when that hierarchy is mounted.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Protocol

from coffer.agent.cgroup_usage import GroupUsage, read_v1_usage, read_v2_usage
from coffer.contracts.engine import InstanceSpec

log = logging.getLogger("coffer.agent.limits")

_ROOT = Path("/sys/fs/cgroup")
_MB = 1024 * 1024
_PERIOD_US = 100_000
#: processes per instance (PostgreSQL: one per connection plus helpers)
_PIDS_PER_GB = 1024
_PIDS_MIN = 256


class ResourceLimits(Protocol):
    mode: str

    def apply(self, spec: InstanceSpec) -> list[str]:
        """Create/update the instance's groups; return the files its engine must join."""
        ...

    def remove(self, instance_id: str) -> None:
        """Delete the instance's groups (its processes must be gone). Idempotent."""

    def usage(self, instance_id: str) -> GroupUsage | None:
        """What the instance's group has used (blocks briefly: reads a few kernel files);
        None when it has no group (no limits, not started) or the kernel does not tell.
        Never raises for a missing or unreadable group."""
        ...


def pids_limit(ram_mb: int) -> int:
    return max(_PIDS_MIN, ram_mb * _PIDS_PER_GB // 1024)


class NoLimits:
    mode = "none (engine settings only)"

    def apply(self, spec: InstanceSpec) -> list[str]:
        return []

    def remove(self, instance_id: str) -> None:
        return None

    def usage(self, instance_id: str) -> GroupUsage | None:
        return None


class CgroupV1Limits:
    mode = "cgroup v1 (memory, cpu, pids)"

    def __init__(self, root: Path = _ROOT) -> None:
        self._root = root

    def _groups(self, instance_id: str) -> dict[str, Path]:
        groups = {c: self._root / c / "coffer" / instance_id for c in ("memory", "cpu", "pids")}
        if (self._root / "cpuacct" / "cgroup.procs").exists():  # accounting only, optional
            groups["cpuacct"] = self._root / "cpuacct" / "coffer" / instance_id
        return groups

    def apply(self, spec: InstanceSpec) -> list[str]:
        groups = self._groups(spec.instance_id)
        for group in groups.values():
            group.mkdir(parents=True, exist_ok=True)
        _set_memory_v1(groups["memory"], spec.ram_mb * _MB)
        _write(groups["cpu"] / "cpu.cfs_period_us", str(_PERIOD_US))
        _write(groups["cpu"] / "cpu.cfs_quota_us", str(spec.vcpus * _PERIOD_US))
        _write(groups["pids"] / "pids.max", str(pids_limit(spec.ram_mb)))
        return _procs([g / "cgroup.procs" for g in groups.values()])

    def remove(self, instance_id: str) -> None:
        for group in self._groups(instance_id).values():
            with contextlib.suppress(FileNotFoundError):
                group.rmdir()

    def usage(self, instance_id: str) -> GroupUsage | None:
        groups = self._groups(instance_id)
        return read_v1_usage(memory=groups["memory"], cpuacct=groups.get("cpuacct"))


class CgroupV2Limits:
    mode = "cgroup v2 (memory.max, cpu.max, pids.max)"

    def __init__(self, root: Path = _ROOT) -> None:
        self._root = root

    def _group(self, instance_id: str) -> Path:
        return self._root / "coffer" / instance_id

    def apply(self, spec: InstanceSpec) -> list[str]:
        parent = self._root / "coffer"
        parent.mkdir(exist_ok=True)
        _write(parent / "cgroup.subtree_control", "+memory +cpu +pids")
        group = self._group(spec.instance_id)
        group.mkdir(exist_ok=True)
        _write(group / "memory.max", str(spec.ram_mb * _MB))
        _write(group / "cpu.max", f"{spec.vcpus * _PERIOD_US} {_PERIOD_US}")
        _write(group / "pids.max", str(pids_limit(spec.ram_mb)))
        return _procs([group / "cgroup.procs"])

    def remove(self, instance_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._group(instance_id).rmdir()

    def usage(self, instance_id: str) -> GroupUsage | None:
        return read_v2_usage(self._group(instance_id))


def detect(forced: str = "auto", root: Path = _ROOT) -> ResourceLimits:
    """The strongest limits this host permits, probing by creating a group."""
    candidates: list[ResourceLimits] = [CgroupV2Limits(root), CgroupV1Limits(root)]
    if forced == "none":
        return NoLimits()
    for limits in candidates:
        problem = _probe(limits, root)
        if problem is None:
            log.info("resource limits: %s", limits.mode)
            return limits
        log.debug("%s unavailable: %s", limits.mode, problem)
    log.warning("resource limits: none on this host; flavors act through engine settings only")
    return NoLimits()


def _probe(limits: ResourceLimits, root: Path) -> str | None:
    if isinstance(limits, CgroupV2Limits):
        controllers = root / "cgroup.controllers"
        if not controllers.exists():
            return "no unified cgroup hierarchy at the root"
        have = set(controllers.read_text().split())
        if not {"memory", "cpu", "pids"} <= have:
            return f"controllers enabled: {' '.join(sorted(have)) or 'none'}"
    elif not all((root / c / "cgroup.procs").exists() for c in ("memory", "cpu", "pids")):
        return "memory/cpu/pids v1 hierarchies are not mounted"
    probe = InstanceSpec(
        instance_id=f"probe-{os.getpid()}",
        engine="none",
        version="0",
        port=1,
        ram_mb=64,
        vcpus=1,
        volume_gb=1,
    )
    try:
        limits.apply(probe)
        limits.remove(probe.instance_id)
    except OSError as exc:
        return str(exc)
    return None


_JOIN_THEN_EXEC = (
    'for f do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; shift; exec "$@"'
)


def launch_in_groups(files: list[str], uid: int, gid: int, argv: list[str]) -> list[str]:
    """argv that, started as root, joins ``files`` (cgroup.procs), drops to ``uid``/``gid``
    with no supplementary groups, and execs ``argv``: no Python runs between fork and exec."""
    drop = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
    return ["/bin/sh", "-c", _JOIN_THEN_EXEC, "coffer-launch", *files, "--", *drop, *argv]


def _set_memory_v1(group: Path, limit: int) -> None:
    """memory+swap may never be below memory: raise memsw first, lower it last."""
    memsw = group / "memory.memsw.limit_in_bytes"
    mem = group / "memory.limit_in_bytes"
    steps = [(mem, limit)]
    if memsw.exists():  # absent when swap accounting is off
        raising = limit > int(mem.read_text())
        steps = [(memsw, limit), (mem, limit)] if raising else [(mem, limit), (memsw, limit)]
    for path, value in steps:
        _write(path, str(value))


def _procs(procs: list[Path]) -> list[str]:
    return [str(p) for p in procs]


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)
