"""Carries out commands from the control plane. Every handler is idempotent by design:
a command delivered twice (at-least-once) ends in the same state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from coffer import engines
from coffer.agent import osusers
from coffer.agent.backups import restore_chain, take_backup
from coffer.agent.clusters import SUPERVISED_STEPS, join, run_step, run_supervised_step
from coffer.agent.guest_logs import run_log_op
from coffer.agent.limits import ResourceLimits
from coffer.agent.replicas import catch_up, open_source, replication_of, upstream_of
from coffer.agent.store import InstanceStore
from coffer.agent.supervisor import EngineSupervisor, terminate
from coffer.agent.verify import BackupVerifier
from coffer.agent.volumes import Usage, Volumes
from coffer.contracts.agent_v1 import AgentCommand, CommandKind
from coffer.contracts.engine import DatabaseSpec, InstanceSpec, UserSpec, UserUpdate
from coffer.engines.base import Admin, Engine, InstancePaths, Upstream
from coffer.engines.host import EngineUser, chown_tree, hand_over
from coffer.errors import BadRequest, CofferError, EngineError, NotFound

log = logging.getLogger("coffer.agent.executor")

START_TIMEOUT_S = 120.0
#: commands that change neither the engine's process nor its files: no need for the lock
_LOCK_FREE = frozenset(
    {
        CommandKind.ADMIN,
        CommandKind.BACKUP,
        CommandKind.VERIFY_BACKUP,
        CommandKind.REPLICATION_OPEN,
        CommandKind.REPLICATION_CLOSE,
        CommandKind.FENCE,
        CommandKind.CATCH_UP,
        CommandKind.GUEST_LOG,
    }
)
#: bounded in the end by the create task's deadline on the server
RESTORE_START_TIMEOUT_S = 3600.0


class Executor:
    def __init__(
        self,
        *,
        store: InstanceStore,
        volumes: Volumes,
        limits: ResourceLimits,
        read_only_at: float = 0.90,
        writable_below: float = 0.85,
        engine_user: str,
        templates_dir: str,
        host_name: str,
        scratch_dir: Path,
    ) -> None:
        self.store = store
        self.volumes = volumes
        self.limits = limits
        self._read_only_at = read_only_at
        self._writable_below = writable_below
        self._engine_user = engine_user
        self._templates_dir = templates_dir
        self._host_name = host_name
        self._engines: dict[str, Engine] = {}
        self.supervisors: dict[str, EngineSupervisor] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: one log command per instance at a time (they read files and write the store)
        self._log_locks: dict[str, asyncio.Lock] = {}
        #: instance id → bytes streamed by its running backup (reported in heartbeats)
        self.backup_progress: dict[str, int] = {}
        #: instances recorded on disk whose engine is not to be started yet (see ``resume``)
        self.held: set[str] = set()
        self.verifier = BackupVerifier(scratch_dir=scratch_dir, volumes=volumes, limits=limits)
        self._tg: asyncio.TaskGroup | None = None

    # -- set-up --------------------------------------------------------------------------

    def engine(self, name: str) -> Engine:
        if name not in self._engines:
            self._engines[name] = engines.engine(
                name, engine_user=self._engine_user, templates_dir=self._templates_dir
            )
        return self._engines[name]

    def installed(self) -> dict[str, list[str]]:
        out = {}
        for name in engines.known_engines():
            try:
                out[name] = self.engine(name).lifecycle.installed_versions()
            except Exception:  # an engine whose libraries are missing is simply absent
                log.exception("engine %s unavailable", name)
        return out

    def _volume_template(self, engine: Engine, spec: InstanceSpec) -> Path | None:
        """The volume image new instances of ``spec``'s engine version are cloned from."""

        def fill(mount_point: Path) -> None:
            engine.lifecycle.prepare(InstancePaths(mount_point, os_user=self._engine_user), spec)

        return self.volumes.template(f"{spec.engine}-{spec.version}", fill)

    async def warm_up(self) -> None:
        """Build every installed engine version's templates in the background."""
        for name, versions in (await asyncio.to_thread(self.installed)).items():
            for version in versions:
                engine = self.engine(name)
                spec = InstanceSpec(
                    instance_id="template",
                    engine=name,
                    version=version,
                    port=1,
                    ram_mb=256,
                    vcpus=1,
                    volume_gb=1,
                )
                try:
                    await asyncio.to_thread(engine.lifecycle.warm_up, version)
                    await asyncio.to_thread(self._volume_template, engine, spec)
                except CofferError as exc:
                    log.warning("could not prepare %s %s ahead of time: %s", name, version, exc)

    async def resume(self, tg: asyncio.TaskGroup, hold: frozenset[str] = frozenset()) -> None:
        """Supervise every instance recorded on disk (adopting engines still running),
        except that those in ``hold`` are not started: sources of replica sets, which
        may have been failed over while the agent was away (see ``release``/``demote``)."""
        self._tg = tg
        for spec in self.store.all():
            sup = self._supervisor(spec)
            if spec.instance_id in hold:
                self.held.add(spec.instance_id)
            else:
                sup.resume()

    def release(self, instance_id: str) -> None:
        """A held source is still the source: run it."""
        if instance_id in self.held:
            self.held.discard(instance_id)
            self.supervisors[instance_id].resume()

    async def demote(self, instance_id: str) -> None:
        """A held source was replaced while the agent was away: it must never take a
        write again. If its engine outlived the agent, adopt and fence it; otherwise it
        stays stopped until the control plane's FOLLOW makes it a replica."""
        sup = self.supervisors.get(instance_id)
        if sup is None or instance_id not in self.held:
            return
        engine = self.engine(sup.spec.engine)
        pid = await asyncio.to_thread(engine.lifecycle.running_pid, sup.paths)
        if pid is None:
            return
        self.held.discard(instance_id)
        sup.resume()
        await sup.wait_accepting(START_TIMEOUT_S)
        replication = replication_of(engine, sup.spec)
        await asyncio.to_thread(replication.fence, sup.paths, sup.spec)
        log.warning("instance %s was replaced as source while away: fenced", instance_id)

    def _supervisor(self, spec: InstanceSpec) -> EngineSupervisor:
        sup = self.supervisors.get(spec.instance_id)
        if sup is None:
            assert self._tg is not None
            paths = self.store.paths(spec.instance_id)
            sup = EngineSupervisor(self.engine(spec.engine), paths, spec, self.limits)
            sup.run_in(self._tg)
            self.supervisors[spec.instance_id] = sup
        sup.spec = spec
        return sup

    # -- dispatch ------------------------------------------------------------------------

    async def execute(self, cmd: AgentCommand) -> dict[str, Any]:
        spec = InstanceSpec.model_validate(cmd.payload["spec"])
        current = self.supervisors.get(spec.instance_id)
        if current is not None and current.spec.read_only:
            # the read-only guard is the agent's own state; guard_volume lifts it
            spec = spec.model_copy(update={"read_only": True})
        handler: Callable[[InstanceSpec, dict[str, Any]], Awaitable[dict[str, Any]]] = {
            CommandKind.ENSURE: self._ensure,
            CommandKind.DELETE: self._delete,
            CommandKind.RESTART: self._restart,
            CommandKind.RECONFIGURE: self._reconfigure,
            CommandKind.RESIZE_VOLUME: self._resize_volume,
            CommandKind.APPLY_PARAMETERS: self._apply_parameters,
            CommandKind.ADMIN: self._admin,
            CommandKind.BACKUP: self._backup,
            CommandKind.VERIFY_BACKUP: self._verify_backup,
            CommandKind.REPLICATION_OPEN: self._open_source,
            CommandKind.REPLICATION_CLOSE: self._close_source,
            CommandKind.FOLLOW: self._follow,
            CommandKind.PROMOTE: self._promote,
            CommandKind.FENCE: self._fence,
            CommandKind.CATCH_UP: self._catch_up,
            CommandKind.CLUSTER: self._cluster_step,
            CommandKind.GUEST_LOG: self._guest_log,
        }[cmd.kind]
        if cmd.kind in _LOCK_FREE:
            return await handler(spec, cmd.payload)
        lock = self._locks.setdefault(spec.instance_id, asyncio.Lock())
        async with lock:
            return await handler(spec, cmd.payload)

    def _check_installed(self, spec: InstanceSpec) -> Engine:
        try:
            engine = self.engine(spec.engine)
        except KeyError as exc:
            raise EngineError(str(exc)) from None
        versions = engine.lifecycle.installed_versions()
        if spec.version not in versions:
            raise EngineError(
                f"{spec.engine} {spec.version} is not installed on host {self._host_name} "
                f"(installed: {', '.join(versions) or 'none'})"
            )
        return engine

    async def _ensure(self, spec: InstanceSpec, payload: dict[str, Any]) -> dict[str, Any]:
        engine = self._check_installed(spec)
        account = await asyncio.to_thread(osusers.ensure_account, spec.instance_id, self.store.root)
        root = self.store.paths(spec.instance_id).root
        restore = payload.get("restore")
        clone = payload.get("clone")
        # a restored or cloned instance's data comes from elsewhere, not from the template
        template = (
            None
            if restore or clone
            else await asyncio.to_thread(self._volume_template, engine, spec)
        )
        fresh = not root.exists() or not any(root.iterdir())
        if clone:
            await self._clone_volume(spec, str(clone["source_id"]))
        await asyncio.to_thread(
            self.volumes.attach, spec.instance_id, root, spec.volume_gb, template
        )
        if template is not None and fresh:
            # the clone carries the template owner's files: hand its data to the instance
            # (the volume's root stays root's: the agent's records live there)
            data_dir = self.store.paths(spec.instance_id).data_dir
            await asyncio.to_thread(chown_tree, data_dir, EngineUser.lookup(account))
        paths = self.store.save(spec)
        if clone and await asyncio.to_thread(engine.lifecycle.running_pid, paths) is None:
            await asyncio.to_thread(self._adopt_clone, engine, paths, spec, str(clone["source_id"]))
        if restore and not paths.data_dir.exists():
            try:
                await asyncio.to_thread(restore_chain, engine, paths, spec, restore)
            except Exception:
                # refused (e.g. a tampered backup): leave nothing of the instance behind
                await self._remove_files(spec)
                raise
        follow = upstream_of(payload["follow"]) if payload.get("follow") else None
        if follow is not None and restore:
            # a replica seeded from a backup follows from its first start
            await asyncio.to_thread(replication_of(engine, spec).follow, paths, spec, follow)
        await asyncio.to_thread(engine.lifecycle.prepare, paths, spec)
        cluster = payload.get("cluster")
        if cluster:
            await asyncio.to_thread(join, engine, paths, spec, cluster)
        await asyncio.to_thread(engine.lifecycle.configure, paths, spec)
        sup = self._supervisor(spec)
        # a restored or cloned engine may replay a long log before it answers, and a
        # cluster member may first receive a copy of the cluster's data
        long_start = restore or clone or cluster
        await sup.start(RESTORE_START_TIMEOUT_S if long_start else START_TIMEOUT_S)
        await asyncio.to_thread(engine.lifecycle.bootstrap, paths, spec)
        if follow is not None and not restore:
            await self._follow_running(engine, paths, spec, follow)
        dbs = [DatabaseSpec.model_validate(d) for d in payload.get("databases", [])]
        users = [UserSpec.model_validate(u) for u in payload.get("users", [])]
        await asyncio.to_thread(_create_missing, engine.admin(paths, spec), dbs, users)
        return observation(self.supervisors[spec.instance_id])

    async def _clone_volume(self, spec: InstanceSpec, source_id: str) -> None:
        """The new volume as a point-in-time copy of the source's (same host)."""
        if source_id not in self.supervisors:
            raise NotFound(f"instance {source_id} to clone is not on host {self._host_name}")
        source_root = self.store.paths(source_id).root
        await asyncio.to_thread(
            self.volumes.clone,
            source_id,
            source_root,
            spec.instance_id,
            spec.volume_gb,
        )

    def _adopt_clone(
        self, engine: Engine, paths: InstancePaths, spec: InstanceSpec, source_id: str
    ) -> None:
        """Give the copied files to the clone's account; the engine makes them its own."""
        source_user = EngineUser.lookup(osusers.account_name(source_id))
        hand_over(paths.root, source_user.uid, EngineUser.lookup(paths.os_user))
        paths.log_file.unlink(missing_ok=True)  # the source's history, not the clone's
        engine.lifecycle.adopt_copy(paths, spec)

    async def _delete(self, spec: InstanceSpec, _: dict[str, Any]) -> dict[str, Any]:
        sup = self.supervisors.pop(spec.instance_id, None)
        if sup is not None:
            await sup.close()
        else:
            await self._stop_unsupervised(spec)
        await self._remove_files(spec)
        self._locks.pop(spec.instance_id, None)
        self._log_locks.pop(spec.instance_id, None)
        return {}

    async def _remove_files(self, spec: InstanceSpec) -> None:
        """Remove the instance's volume, resource groups and OS account (idempotent)."""
        root = self.store.paths(spec.instance_id).root
        await asyncio.to_thread(self.volumes.remove, spec.instance_id, root)
        await asyncio.to_thread(self.limits.remove, spec.instance_id)
        await asyncio.to_thread(osusers.remove_account, spec.instance_id)

    async def _stop_unsupervised(self, spec: InstanceSpec) -> None:
        """Kill an engine no supervisor owns (left over from an interrupted create)."""
        engine = self.engine(spec.engine)
        paths = self.store.paths(spec.instance_id)
        pid = await asyncio.to_thread(engine.lifecycle.running_pid, paths)
        if pid is not None:
            await terminate(pid, engine.lifecycle.stop_signal)

    async def _restart(self, spec: InstanceSpec, _: dict[str, Any]) -> dict[str, Any]:
        sup = self._known(spec)
        await sup.restart(START_TIMEOUT_S)
        return observation(self.supervisors[spec.instance_id])

    async def _reconfigure(self, spec: InstanceSpec, _: dict[str, Any]) -> dict[str, Any]:
        """Apply a new spec; if the engine will not come up with it, roll back."""
        sup = self._known(spec)
        old = sup.spec
        engine = self.engine(spec.engine)
        paths = self.store.save(spec)
        await asyncio.to_thread(engine.lifecycle.configure, paths, spec)
        sup.spec = spec
        try:
            await sup.restart(START_TIMEOUT_S)
        except EngineError:
            log.warning(
                "instance %s did not start with its new configuration; rolling back",
                spec.instance_id,
            )
            self.store.save(old)
            await asyncio.to_thread(engine.lifecycle.configure, paths, old)
            sup.spec = old
            await sup.restart(START_TIMEOUT_S)
            raise
        return observation(self.supervisors[spec.instance_id])

    async def _apply_parameters(self, spec: InstanceSpec, _: dict[str, Any]) -> dict[str, Any]:
        """Render the new parameters and apply the live ones (no restart here)."""
        sup = self._known(spec)
        engine = self.engine(spec.engine)
        paths = self.store.save(spec)
        await asyncio.to_thread(engine.lifecycle.configure, paths, spec)
        await asyncio.to_thread(engine.lifecycle.apply_parameters, paths, spec)
        sup.spec = spec
        return observation(sup)

    async def _resize_volume(self, spec: InstanceSpec, _: dict[str, Any]) -> dict[str, Any]:
        self._known(spec)
        root = self.store.paths(spec.instance_id).root
        await asyncio.to_thread(self.volumes.grow, spec.instance_id, root, spec.volume_gb)
        self.store.save(spec)
        self.supervisors[spec.instance_id].spec = spec
        return observation(self.supervisors[spec.instance_id])

    async def guard_volume(self, instance_id: str, usage: Usage) -> None:
        """Turn the instance read-only when its volume is nearly full, and back when not.

        The engine refuses writes before the filesystem is full, so it never meets ENOSPC
        in the middle of a write (for PostgreSQL a failed WAL write is a crash).
        """
        sup = self.supervisors.get(instance_id)
        if sup is None or not usage.total_bytes:
            return
        fill = usage.used_bytes / usage.total_bytes
        want = fill >= self._read_only_at or (sup.spec.read_only and fill >= self._writable_below)
        if want == sup.spec.read_only:
            return
        lock = self._locks.setdefault(instance_id, asyncio.Lock())
        async with lock:
            spec = sup.spec.model_copy(update={"read_only": want})
            engine = self.engine(spec.engine)
            paths = self.store.save(spec)
            await asyncio.to_thread(engine.lifecycle.configure, paths, spec)
            await asyncio.to_thread(engine.lifecycle.apply_parameters, paths, spec)
            sup.spec = spec
            sup.status = sup.accepting_status()
        log.warning("instance %s volume %.0f%% full: read-only %s", instance_id, fill * 100, want)

    def _known(self, spec: InstanceSpec) -> EngineSupervisor:
        if spec.instance_id not in self.supervisors:
            raise NotFound(f"instance {spec.instance_id} is not on host {self._host_name}")
        return self.supervisors[spec.instance_id]

    async def _admin(self, spec: InstanceSpec, payload: dict[str, Any]) -> dict[str, Any]:
        self._known(spec)
        admin = self.engine(spec.engine).admin(self.store.paths(spec.instance_id), spec)
        return await asyncio.to_thread(run_admin_op, admin, payload["op"], payload.get("args", {}))

    async def _backup(self, spec: InstanceSpec, payload: dict[str, Any]) -> dict[str, Any]:
        self._known(spec)
        paths = self.store.paths(spec.instance_id)
        iid = spec.instance_id

        def progress(raw_bytes: int) -> None:
            self.backup_progress[iid] = raw_bytes

        try:
            return await asyncio.to_thread(
                take_backup, self.engine(spec.engine), paths, spec, payload, progress
            )
        finally:
            self.backup_progress.pop(iid, None)

    async def _guest_log(self, spec: InstanceSpec, payload: dict[str, Any]) -> dict[str, Any]:
        self._known(spec)
        engine = self.engine(spec.engine)
        paths = self.store.paths(spec.instance_id)
        lock = self._log_locks.setdefault(spec.instance_id, asyncio.Lock())
        async with lock:
            return await asyncio.to_thread(run_log_op, engine, paths, spec, payload)

    async def _verify_backup(self, spec: InstanceSpec, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.verifier.verify(self._check_installed(spec), spec, payload)

    # -- replication -----------------------------------------------------------------------

    async def _open_source(self, spec: InstanceSpec, payload: dict[str, Any]) -> dict[str, Any]:
        sup = self._known(spec)
        # it is a source from now on: remembered, so that an agent restart holds it back
        # until the control plane confirms it still is (see ``resume``)
        paths = self.store.save(spec)
        sup.spec = spec
        return await asyncio.to_thread(open_source, self.engine(spec.engine), paths, spec, payload)

    async def _close_source(self, spec: InstanceSpec, payload: dict[str, Any]) -> dict[str, Any]:
        self._known(spec)
        replication = replication_of(self.engine(spec.engine), spec)
        paths = self.store.paths(spec.instance_id)
        await asyncio.to_thread(replication.close_source, paths, spec, str(payload["replica_id"]))
        return {}

    async def _follow(self, spec: InstanceSpec, payload: dict[str, Any]) -> dict[str, Any]:
        sup = self._known(spec)
        engine = self.engine(spec.engine)
        paths = self.store.save(spec)
        sup.spec = spec
        upstream = upstream_of(payload["follow"])
        if spec.instance_id in self.held:
            await self._follow_held(engine, paths, spec, upstream)
        else:
            await self._follow_running(engine, paths, spec, upstream)
        return observation(self.supervisors[spec.instance_id])

    async def _follow_held(
        self, engine: Engine, paths: InstancePaths, spec: InstanceSpec, upstream: Upstream
    ) -> None:
        """Start a held former source as a replica: configured to follow before its
        first start where the engine can, else started refusing writes (the read-only
        guard's setting) and made to follow at once."""
        replication = replication_of(engine, spec)
        sup = self.supervisors[spec.instance_id]
        try:
            await asyncio.to_thread(replication.follow, paths, spec, upstream)
            stopped = True
        except (BadRequest, EngineError) as exc:  # the engine follows only when running
            log.info("instance %s follows once started read-only: %s", spec.instance_id, exc)
            stopped = False
        guarded = spec if stopped else spec.model_copy(update={"read_only": True})
        await asyncio.to_thread(engine.lifecycle.configure, paths, guarded)
        sup.spec = guarded
        self.held.discard(spec.instance_id)
        await sup.start(START_TIMEOUT_S)
        await asyncio.to_thread(engine.lifecycle.bootstrap, paths, guarded)
        if not stopped:
            await self._follow_running(engine, paths, spec, upstream)
            await asyncio.to_thread(engine.lifecycle.configure, paths, spec)
            await asyncio.to_thread(engine.lifecycle.apply_parameters, paths, spec)
            sup.spec = spec

    async def _follow_running(
        self, engine: Engine, paths: InstancePaths, spec: InstanceSpec, upstream: Upstream
    ) -> None:
        replication = replication_of(engine, spec)
        sup = self.supervisors[spec.instance_id]
        if replication.follow_stops_primary:
            state = await asyncio.to_thread(replication.state, paths, spec)
            if state.role == "primary":
                # e.g. a fenced former source that must be rewound while stopped
                await sup.stop()
                await asyncio.to_thread(replication.follow, paths, spec, upstream)
                await asyncio.to_thread(engine.lifecycle.configure, paths, spec)
                await sup.start(START_TIMEOUT_S)
                await asyncio.to_thread(engine.lifecycle.bootstrap, paths, spec)
                return
        if await asyncio.to_thread(replication.follow, paths, spec, upstream):
            await sup.restart(START_TIMEOUT_S)

    async def _fence(self, spec: InstanceSpec, _: dict[str, Any]) -> dict[str, Any]:
        self._known(spec)
        replication = replication_of(self.engine(spec.engine), spec)
        paths = self.store.paths(spec.instance_id)
        return {"position": await asyncio.to_thread(replication.fence, paths, spec)}

    async def _catch_up(self, spec: InstanceSpec, payload: dict[str, Any]) -> dict[str, Any]:
        self._known(spec)
        replication = replication_of(self.engine(spec.engine), spec)
        paths = self.store.paths(spec.instance_id)
        return await asyncio.to_thread(
            catch_up, replication, paths, spec, int(payload["position"]), payload["timeout_s"]
        )

    async def _promote(self, spec: InstanceSpec, _: dict[str, Any]) -> dict[str, Any]:
        sup = self._known(spec)
        replication = replication_of(self.engine(spec.engine), spec)
        await asyncio.to_thread(replication.promote, self.store.save(spec), spec)
        sup.spec = spec
        return observation(self.supervisors[spec.instance_id])

    async def _cluster_step(self, spec: InstanceSpec, payload: dict[str, Any]) -> dict[str, Any]:
        sup = self._known(spec)
        engine = self.engine(spec.engine)
        paths = self.store.paths(spec.instance_id)
        op, args = str(payload["op"]), payload.get("args") or {}
        if op in SUPERVISED_STEPS:
            return await run_supervised_step(engine, sup, op, RESTORE_START_TIMEOUT_S)
        return await asyncio.to_thread(run_step, engine, paths, spec, op, args)


def volume_note(used_bytes: int | None, spec: InstanceSpec) -> str:
    """The fault users see while the guard keeps the instance read-only."""
    used = f"{used_bytes / 1024**3:.2f} GB" if used_bytes is not None else "nearly all"
    return (
        f"the volume is nearly full ({used} of {spec.volume_gb} GB used): the instance "
        "refuses writes until data is deleted or the volume is resized"
    )


def observation(sup: EngineSupervisor) -> dict[str, Any]:
    """What a lifecycle command reports: the engine's state now, stamped like heartbeats."""
    return {"service_status": sup.status.value, "seq": time.time_ns()}


def _create_missing(admin: Admin, dbs: list[DatabaseSpec], users: list[UserSpec]) -> None:
    """Create the initial databases and users not already there (a re-run is harmless)."""
    if dbs:
        existing_dbs = {d.name for d in admin.list_databases()}
        missing_dbs = [d for d in dbs if d.name not in existing_dbs]
        if missing_dbs:
            admin.create_databases(missing_dbs)
    if users:
        existing_users = {(u.name, u.host) for u in admin.list_users()}
        missing_users = [u for u in users if (u.name, u.host) not in existing_users]
        if missing_users:
            admin.create_users(missing_users)


def _user_dict(name: str, host: str, databases: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {"name": name, "host": host, "databases": list(databases)}


def run_admin_op(admin: Admin, op: str, x: dict[str, Any]) -> dict[str, Any]:
    """Dispatch one admin operation by name; results are JSON-ready dicts."""
    match op:
        case "list_databases":
            return {"databases": [d.model_dump() for d in admin.list_databases()]}
        case "create_databases":
            admin.create_databases([DatabaseSpec.model_validate(d) for d in x["databases"]])
        case "delete_database":
            admin.delete_database(x["name"])
        case "list_users":
            return {"users": [_user_dict(u.name, u.host, u.databases) for u in admin.list_users()]}
        case "get_user":
            u = admin.get_user(x["name"], x["host"])
            return {"user": _user_dict(u.name, u.host, u.databases)}
        case "create_users":
            admin.create_users([UserSpec.model_validate(u) for u in x["users"]])
        case "delete_user":
            admin.delete_user(x["name"], x["host"])
        case "update_user":
            admin.update_user(x["name"], x["host"], UserUpdate.model_validate(x["update"]))
        case "list_access":
            return {"databases": admin.list_access(x["name"], x["host"])}
        case "grant_access":
            admin.grant_access(x["name"], x["host"], list(x["databases"]))
        case "revoke_access":
            admin.revoke_access(x["name"], x["host"], x["database"])
        case "enable_root":
            return {"name": "root", "password": admin.enable_root(x["password"])}
        case "disable_root":
            admin.disable_root()
        case "is_root_enabled":
            return {"enabled": admin.is_root_enabled()}
        case _:
            raise BadRequest(f"unknown admin operation {op!r}")
    return {}
