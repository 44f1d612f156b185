"""Host-side lifecycle of a Redis instance: files, argv, adoption and probing.

The agent, not this module, spawns ``command()`` as the instance account in a new
session, sends its output to ``paths.log_file`` (Redis logs to stdout) and stops it with
``stop_signal``: on SIGTERM Redis fsyncs the append-only file, writes a final RDB
snapshot and exits. Redis needs no template: an empty data directory starts in ≈ 10 ms.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coffer.contracts.engine import InstanceSpec, Probe
from coffer.engines.base import InstancePaths
from coffer.engines.host import (
    EngineUser,
    check_traversable,
    make_private_dir,
    write_private_file,
)
from coffer.engines.redis.acl import acl_file_with_coffer_users
from coffer.engines.redis.catalog import CATALOG, DEFAULT_USER
from coffer.engines.redis.config import (
    ACL_FILE,
    acl_path,
    admin_secret_path,
    cluster_path,
    cluster_settings,
    config_path,
    is_fenced,
    live_settings,
    pid_path,
    render_config,
    replication_path,
    replication_settings,
    server_settings,
)
from coffer.engines.redis.connection import (
    Client,
    connect,
    describe,
    read_admin_password,
    run,
    translate_errors,
)
from coffer.engines.redis.copies import PARTIAL_DATA_DIR, check_copy, forget_source, own_acl_file
from coffer.engines.templates import exclusive_lock, fsync_dir
from coffer.errors import BadRequest, EngineError

__all__ = ["DEFAULT_SERVER", "DataFill", "RedisLifecycle", "is_fenced_instance"]

#: Debian's ``redis-server`` (a link to ``redis-check-rdb``, which dispatches on argv[0]).
DEFAULT_SERVER = Path("/usr/bin/redis-server")
_SERVER_NAME = "redis-server"
_PREPARE_LOCK = ".coffer-prepare.lock"
_PROBE_TIMEOUT_S = 1.0
_SECRET_BYTES = 32
_VERSION = re.compile(r"\bv=(\d+)\.(\d+)\.\d+")

#: writes a new data directory's files into the empty directory it is given and returns
#: the ACL users to keep (``RedisLifecycle.prepare_from``)
DataFill = Callable[[Path], str]


class RedisLifecycle:
    """The Redis ``Lifecycle``. Every method but ``prepare_from`` (a restore's, which
    needs an absent data directory) is idempotent; none keeps state."""

    stop_signal: signal.Signals = signal.SIGTERM

    def __init__(self, *, server: Path = DEFAULT_SERVER) -> None:
        self._server = server

    def installed_versions(self) -> list[str]:
        """The catalog version of the installed ``redis-server`` (asks the binary)."""
        try:
            result = subprocess.run(
                [str(self._server), "--version"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return []
        match = _VERSION.search(result.stdout)
        if result.returncode != 0 or match is None:
            return []
        version = f"{match[1]}.{match[2]}"
        return [version] if version in CATALOG.versions else []

    def warm_up(self, version: str) -> None:
        """Nothing to build: a Redis instance starts from an empty directory."""

    def prepare(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Create the admin password (root-only, in ``paths.root``) and an empty data
        directory holding an ACL file with the default user disabled and the admin user,
        unless they exist; create ``paths.run_dir``. Holds a lock file in ``paths.root``."""
        self._lay_down(paths, spec, fill=None)

    def prepare_from(self, paths: InstancePaths, spec: InstanceSpec, fill: DataFill) -> None:
        """``prepare`` for a data directory that must be absent, filled by ``fill``.

        ``fill(partial)`` writes the data files into the empty directory ``partial`` and
        returns the ACL users to keep (``user ...`` lines; any ``default`` or admin line
        is replaced as ``configure`` would). Then the ACL file is written, everything is
        given to the instance account (directories 0700, files 0600), fsynced and renamed
        into ``paths.data_dir``; the admin password and ``paths.run_dir`` are made as
        ``prepare`` makes them. If ``fill`` raises, the partial directory is removed and
        the exception propagates: no data directory, password or run directory is left.
        ``EngineError`` if ``paths.data_dir`` exists (nothing is changed then).
        """
        self._lay_down(paths, spec, fill=fill)

    def configure(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Rewrite ``redis.conf`` whole, and make sure the ACL file disables the default
        user and knows the admin password (rewritten only if it does not, so a running
        server's ``ACL SAVE`` is not raced). The replication marker's directives
        (``follow``, ``fence``, ``promote``) are rendered last, after the cluster marker's
        (``coffer.engines.redis.cluster``). Everything is validated before any write."""
        if not paths.data_dir.is_dir():
            raise EngineError(f"{str(paths.data_dir)!r} is not a prepared data directory")
        settings = server_settings(spec, paths)
        settings.update(cluster_settings(_read_file(cluster_path(paths)), paths))
        settings.update(replication_settings(_read_marker(paths)))
        text = render_config(settings)
        password = read_admin_password(paths)
        user = EngineUser.lookup(paths.os_user)
        write_private_file(config_path(paths), text, user)
        try:
            current = acl_path(paths).read_text(encoding="utf-8")
        except FileNotFoundError:
            current = ""
        wanted = acl_file_with_coffer_users(current, password)
        if wanted != current:
            write_private_file(acl_path(paths), wanted, user)

    def command(self, paths: InstancePaths, spec: InstanceSpec) -> list[str]:
        """The foreground server: ``redis-server <root>/redis.conf``."""
        self._check_version(spec.version)
        return [str(self._server), str(config_path(paths))]

    def running_pid(self, paths: InstancePaths) -> int | None:
        """The pid in ``run/redis.pid`` if that process is alive and is a Redis server of
        this instance's configuration (a recycled pid is not mistaken for it)."""
        try:
            pid = int(pid_path(paths).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _serves(pid, config_path(paths)) else None

    def probe(self, paths: InstancePaths, spec: InstanceSpec) -> Probe:
        """``PING`` as the admin user over the unix socket; within ~2 s, never raises."""
        try:
            with connect(paths, timeout_s=_PROBE_TIMEOUT_S) as client:
                client.ping()
        except Exception as exc:  # the contract: a probe reports, it never raises
            return Probe(accepting=False, detail=describe(exc))
        return Probe(accepting=True, detail="accepting connections")

    def bootstrap(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Disable the default user again (it is, from the ACL file) and save the ACL
        file in Redis's own form."""
        with translate_errors("bootstrap"), connect(paths) as client:
            run(client, "ACL", "SETUSER", DEFAULT_USER, "reset")
            run(client, "ACL", "SAVE")

    def adopt_copy(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Make a copy of another instance's root this instance's own (decisions per file
        in ``coffer.engines.redis.copies``): the source's configuration, replication
        marker, log, stale socket and pid, half-written files and internal users other
        than the admin are removed; the dataset and the tenant and root users are kept;
        the admin user gets a new password (root-only secret). The next ``configure``
        and start give a standalone, writable primary (unless ``spec.read_only``).

        ``EngineError``, changing nothing, if ``paths.data_dir`` is not a Redis data
        directory given to ``paths.os_user``, or if a server runs on ``paths``.
        Idempotent (each call picks a new admin password). Holds the prepare lock."""
        user = EngineUser.lookup(paths.os_user)
        check_copy(paths, user)
        if self.running_pid(paths) is not None:
            raise EngineError(
                f"a Redis server runs on {str(paths.root)!r}: a copy is adopted before its "
                "first start"
            )
        with exclusive_lock(paths.root / _PREPARE_LOCK):
            forget_source(paths)
            password = _new_admin_secret(paths)
            acl_text = acl_path(paths).read_text(encoding="utf-8")
            write_private_file(acl_path(paths), own_acl_file(acl_text, password), user)
            make_private_dir(paths.run_dir, user)
            fsync_dir(paths.data_dir)
            fsync_dir(paths.root)

    def apply_parameters(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """``CONFIG SET``, in one atomic command, every live setting whose running value
        differs from ``spec`` (parameters absent from ``spec.parameters`` go back to their
        defaults, ``maxmemory`` follows the flavor; a replication fence stays on).
        Restart-required ones wait for the next start, from the file ``configure``
        wrote."""
        wanted = live_settings(spec, fenced=is_fenced_instance(paths))
        with translate_errors("applying parameters"), connect(paths) as client:
            running = _config_get(client, list(wanted))
            changes = {name: value for name, value in wanted.items() if running.get(name) != value}
            if changes:
                run(client, "CONFIG", "SET", *(arg for pair in changes.items() for arg in pair))

    def set_replication(self, paths: InstancePaths, spec: InstanceSpec, marker: str) -> None:
        """Replace the replication marker with ``marker`` (``config.replication_marker``;
        root-only, 0600) and, if the instance is prepared, ``configure`` it, so that
        ``redis.conf`` follows it from the next start on. Nothing is live here."""
        replication_settings(marker)  # refuse a damaged marker before writing it
        write_private_file(replication_path(paths), marker, _agent_account())
        if paths.data_dir.is_dir():
            self.configure(paths, spec)

    def _lay_down(self, paths: InstancePaths, spec: InstanceSpec, fill: DataFill | None) -> None:
        self._check_version(spec.version)
        user = EngineUser.lookup(paths.os_user)
        paths.root.mkdir(parents=True, exist_ok=True)
        check_traversable(paths.root, user)
        with exclusive_lock(paths.root / _PREPARE_LOCK):
            if not paths.data_dir.exists():
                _lay_down_data_dir(paths, user, fill)
            elif fill is not None:
                raise EngineError(
                    f"cannot restore into {str(paths.data_dir)!r}: a data directory exists there"
                )
            else:
                _ensure_admin_secret(paths)
            make_private_dir(paths.run_dir, user)

    def _check_version(self, version: str) -> None:
        if version not in CATALOG.versions:
            known = ", ".join(CATALOG.versions)
            raise BadRequest(f"Redis version {version!r} is not supported (known: {known})")
        if version not in self.installed_versions():
            raise EngineError(f"Redis {version} is not installed on this host ({self._server})")


def _lay_down_data_dir(paths: InstancePaths, user: EngineUser, fill: DataFill | None) -> None:
    """Build ``paths.data_dir`` (absent) aside and rename it into place. The caller
    holds the prepare lock (the partial directory is shared)."""
    partial = paths.root / PARTIAL_DATA_DIR
    shutil.rmtree(partial, ignore_errors=True)
    make_private_dir(partial, user)
    try:
        users = "" if fill is None else fill(partial)
        password = _ensure_admin_secret(paths)
        write_private_file(partial / ACL_FILE, acl_file_with_coffer_users(users, password), user)
        _give_to(partial, user)
        os.rename(partial, paths.data_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    fsync_dir(paths.root)


def _give_to(tree: Path, user: EngineUser) -> None:
    """Own ``tree`` by ``user``, directories 0700 and regular files 0600, all fsynced;
    ``EngineError`` for anything else in it (no symlink is followed)."""
    for directory, _dirs, files in os.walk(tree, topdown=False):
        for name in files:
            fd = os.open(Path(directory, name), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise EngineError(f"{name!r} in a new data directory is not a regular file")
                os.fchown(fd, user.uid, user.gid)
                os.fchmod(fd, 0o600)
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chown(directory, user.uid, user.gid)
        os.chmod(directory, 0o700)
        fsync_dir(Path(directory))


def is_fenced_instance(paths: InstancePaths) -> bool:
    """Whether the replication marker fences the instance's writes (``fence``)."""
    return is_fenced(_read_marker(paths))


def _read_marker(paths: InstancePaths) -> str:
    """The replication marker's text, "" if there is none."""
    return _read_file(replication_path(paths))


def _read_file(path: Path) -> str:
    """A marker file's text, "" if there is none."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _config_get(client: Client, names: list[str]) -> dict[str, str]:
    reply: Any = run(client, "CONFIG", "GET", *names)
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    pairs = list(reply)
    return {str(pairs[i]): str(pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)}


def _ensure_admin_secret(paths: InstancePaths) -> str:
    """The admin password, generated into a file only the agent's account can read."""
    path = admin_secret_path(paths)
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    password = secrets.token_urlsafe(_SECRET_BYTES)
    write_private_file(path, password + "\n", _agent_account())
    return password


def _new_admin_secret(paths: InstancePaths) -> str:
    """A new admin password, replacing the file ``_ensure_admin_secret`` reads."""
    password = secrets.token_urlsafe(_SECRET_BYTES)
    write_private_file(admin_secret_path(paths), password + "\n", _agent_account())
    return password


def _agent_account() -> EngineUser:
    """The agent's own account: what owns the instance's root-only files."""
    return EngineUser(name="agent", uid=os.geteuid(), gid=os.getegid(), home="/")


def _serves(pid: int, config: Path) -> bool:
    """Whether live process ``pid`` runs ``redis-server <config>``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [os.fsdecode(arg) for arg in argv if arg]
    if len(args) < 2 or Path(args[0]).name != _SERVER_NAME:
        return False
    given = Path(args[1])
    if not given.is_absolute():
        given = Path(f"/proc/{pid}/cwd") / given
    try:
        return os.path.samefile(given, config)
    except OSError:
        return False
