"""Proving a backup restorable: restore it into a throwaway instance, start the engine,
run its own checks, compare the counts recorded at backup time, tear everything down.

Throwaway instances live under ``scratch_dir`` (never in the instance store, so a
restarted agent does not resume them); ``sweep`` removes any left by a crash.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from coffer.agent import osusers
from coffer.agent.backups import restore_chain
from coffer.agent.limits import ResourceLimits
from coffer.agent.supervisor import EngineSupervisor
from coffer.agent.volumes import Volumes
from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import Engine, InstancePaths
from coffer.errors import CofferError

log = logging.getLogger("coffer.agent.verify")

#: a restored engine may replay a long log before it answers (the verification's command
#: deadline on the server bounds it)
START_TIMEOUT_S = 3600.0


class BackupVerifier:
    def __init__(self, *, scratch_dir: Path, volumes: Volumes, limits: ResourceLimits) -> None:
        self._dir = scratch_dir
        self._volumes = volumes
        self._limits = limits
        scratch_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(scratch_dir, 0o755)  # each throwaway's account traverses it to its data

    def paths(self, instance_id: str) -> InstancePaths:
        return InstancePaths(self._dir / instance_id, os_user=osusers.account_name(instance_id))

    async def verify(
        self, engine: Engine, spec: InstanceSpec, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Restore ``payload["restore"]`` as ``spec`` (a throwaway id and port), compare
        counts with ``payload["counts"]`` and run the engine's check, all within
        ``payload["deadline"]`` (a Unix time before the server stops waiting, so the
        throwaway is gone before the server gives its port away). Returns
        ``{"ok": bool, "detail": str}``; the throwaway is removed in every case."""
        # the server's deadline is absolute (it may have been waiting since before delivery)
        timeout_s = float(payload["deadline"]) - time.time()
        if timeout_s <= 0:
            await self.remove(spec.instance_id)
            return {"ok": False, "detail": "the verification expired before it could start"}
        try:
            async with asyncio.timeout(timeout_s):
                return await self._verify(engine, spec, payload)
        except TimeoutError:
            return {"ok": False, "detail": f"the verification did not end within {timeout_s:.0f} s"}
        finally:
            await self.remove(spec.instance_id)

    async def _verify(
        self, engine: Engine, spec: InstanceSpec, payload: dict[str, Any]
    ) -> dict[str, Any]:
        paths = self.paths(spec.instance_id)
        try:
            await asyncio.to_thread(osusers.ensure_account, spec.instance_id, self._dir)
            await asyncio.to_thread(
                self._volumes.attach, spec.instance_id, paths.root, spec.volume_gb, None
            )
            await asyncio.to_thread(restore_chain, engine, paths, spec, payload["restore"])
            await asyncio.to_thread(engine.lifecycle.configure, paths, spec)
            sup = EngineSupervisor(engine, paths, spec, self._limits)
            async with asyncio.TaskGroup() as tg:
                sup.run_in(tg)
                try:
                    await sup.start(START_TIMEOUT_S)
                    await asyncio.to_thread(engine.lifecycle.bootstrap, paths, spec)
                    return await asyncio.to_thread(
                        _check,
                        engine,
                        paths,
                        spec,
                        payload["counts"],
                        bool(payload.get("counts_exact")),
                    )
                finally:
                    await sup.close()
        except CofferError as exc:
            # the backup would not restore, start or pass its checks: that is the finding
            return {"ok": False, "detail": exc.message}

    async def remove(self, instance_id: str) -> None:
        """Kill whatever runs as the throwaway's account, then remove its files."""
        paths = self.paths(instance_id)
        await asyncio.to_thread(osusers.kill_processes, instance_id)
        await asyncio.to_thread(self._volumes.remove, instance_id, paths.root)
        await asyncio.to_thread(self._limits.remove, instance_id)
        await asyncio.to_thread(osusers.remove_account, instance_id)

    async def sweep(self) -> None:
        """Remove throwaways left by an agent that died while verifying."""
        for entry in sorted(self._dir.iterdir()):
            log.info("removing the throwaway instance %s left by a crash", entry.name)
            await self.remove(entry.name)
        for name in await asyncio.to_thread(osusers.sweep, self._dir, set()):
            log.info("removed the account %s of a throwaway instance", name)


def _check(
    engine: Engine,
    paths: InstancePaths,
    spec: InstanceSpec,
    expected: dict[str, int],
    exact: bool,
) -> dict[str, Any]:
    """Counts first (exact ones must match), then the engine's own checks."""
    counts = engine.backups.counts(paths, spec)
    differ = sorted(k for k in set(counts) | set(expected) if counts.get(k) != expected.get(k))
    shown = ", ".join(f"{k}: {expected.get(k)} → {counts.get(k)}" for k in differ[:5])
    if differ and exact:
        return {"ok": False, "detail": f"restored contents differ from the backup's: {shown}"}
    summary = engine.backups.check(paths, spec)
    total = sum(counts.values())
    if differ:
        # the source's counts were taken just after the backup, while it took writes
        note = f"{total} rows/keys; counted on the source after the backup, {shown}"
    else:
        note = f"{total} rows/keys match"
    return {"ok": True, "detail": f"restored; {note}; {summary}"}
