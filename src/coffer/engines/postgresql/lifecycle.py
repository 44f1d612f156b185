"""Host-side lifecycle of a PostgreSQL instance: files, argv, adoption and probing.

The agent, not this module, spawns ``command()`` as the engine user in a new session,
sends its output to ``paths.log_file`` and stops it with ``stop_signal`` (SIGINT is
PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit).

After ``Backups.restore`` (instead of ``prepare``), ``configure`` renders the recovery
settings while the restore's recovery is pending; the first start replays the restored
WAL (accepting no connections meanwhile) and promotes; ``bootstrap`` waits for that,
then renders the settings without recovery and removes the restored WAL.

After ``adopt_copy`` (a clone: a copy of another instance's volume, ``clone``) the same
holds: the first start recovers the copy and promotes, ``bootstrap`` waits for that.

A replica (``standby.signal``, made by ``replication``) stays in recovery for good:
``configure`` renders its upstream (``upstream``) and ``bootstrap`` has nothing to do on
it (its catalogs are its primary's, changed there) and never waits for its recovery.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from coffer.contracts.engine import InstanceSpec, Probe
from coffer.engines.base import InstancePaths
from coffer.engines.host import (
    EngineUser,
    check_traversable,
    make_private_dir,
    write_private_file,
)
from coffer.engines.postgresql.catalog import CATALOG
from coffer.engines.postgresql.clone import adopt_copied_files, adopted, check_copy
from coffer.engines.postgresql.config import (
    FENCE_MARKER,
    HBA_FILE,
    MAIN_FILE,
    RECOVERY_SIGNAL,
    RECOVERY_TARGET,
    SETTINGS_FILE,
    STANDBY_SIGNAL,
    render_hba,
    render_settings,
    restore_wal_dir,
    server_settings,
    wal_archive_dir,
    with_include,
)
from coffer.engines.postgresql.connection import connect, describe, translate_errors
from coffer.engines.postgresql.template import clone_template, ensure_template
from coffer.engines.postgresql.upstream import read_upstream
from coffer.engines.templates import exclusive_lock
from coffer.errors import BadRequest, EngineError

__all__ = ["DEFAULT_INSTALL_ROOT", "PREPARE_LOCK", "PostgresLifecycle", "is_standby"]

#: Debian's layout: ``/usr/lib/postgresql/<major>/bin``.
DEFAULT_INSTALL_ROOT = Path("/usr/lib/postgresql")
#: lock file in ``paths.root`` held while a data directory is made (prepare or restore)
PREPARE_LOCK = ".coffer-prepare.lock"
_SERVER_NAMES = frozenset({"postgres", "postmaster"})
_PROBE_TIMEOUT_S = 2
_PROBE_STATEMENT_TIMEOUT_MS = 1000
#: how long ``bootstrap`` waits for a restore's WAL replay to end
_RECOVERY_WAIT_S = 6 * 3600
_RECOVERY_POLL_S = 0.2


class PostgresLifecycle:
    """The PostgreSQL ``Lifecycle``. Every method is idempotent; none keeps state."""

    stop_signal: signal.Signals = signal.SIGINT

    def __init__(
        self,
        *,
        engine_user: str,
        templates_dir: Path,
        install_root: Path = DEFAULT_INSTALL_ROOT,
    ) -> None:
        self._engine_user = engine_user
        self._templates_dir = templates_dir
        self._install_root = install_root

    def installed_versions(self) -> list[str]:
        """Catalog versions whose server binary exists on this host."""
        return [v for v in CATALOG.versions if (self._bin_dir(v) / "postgres").is_file()]

    def warm_up(self, version: str) -> None:
        """Build the initdb template of ``version`` now, so no create waits for it."""
        ensure_template(
            templates_dir=self._templates_dir,
            version=version,
            bin_dir=self.installed_bin_dir(version),
            user=EngineUser.lookup(self._engine_user),
        )

    def prepare(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Clone the version's template into ``paths.data_dir`` unless it exists, and
        create ``paths.run_dir``. May block for an initdb (first use of a version on this
        host) and holds a per-instance lock file in ``paths.root`` meanwhile."""
        user = EngineUser.lookup(paths.os_user)
        template_owner = EngineUser.lookup(self._engine_user)
        bin_dir = self.installed_bin_dir(spec.version)
        paths.root.mkdir(parents=True, exist_ok=True)
        check_traversable(paths.root, user)
        with exclusive_lock(paths.root / PREPARE_LOCK):
            if not paths.data_dir.exists():
                template = ensure_template(
                    templates_dir=self._templates_dir,
                    version=spec.version,
                    bin_dir=bin_dir,
                    user=template_owner,
                )
                clone_template(template, paths.data_dir, bin_dir=bin_dir, user=user)
            make_private_dir(paths.run_dir, user)

    def configure(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Rewrite ``coffer.conf`` and ``pg_hba.conf`` and make ``postgresql.conf``
        include the former; create the WAL archive directory. Everything is rendered
        (and validated) before any write. While a restore's recovery is pending
        (``recovery.signal`` and the restored WAL both present) the recovery settings
        are rendered too, so a configure before the first start keeps them; while the
        instance follows an upstream (``upstream.read_upstream``), the streaming ones;
        while it is fenced (``replication``), read-only transactions by default."""
        main_file = paths.data_dir / MAIN_FILE
        if not main_file.is_file():
            raise EngineError(f"{str(paths.data_dir)!r} is not a prepared data directory")
        archive_dir = wal_archive_dir(paths.root)
        restore_dir = restore_wal_dir(paths.root) if _recovery_pending(paths) else None
        target = _recovery_target(restore_dir) if restore_dir else None
        upstream = read_upstream(paths)
        settings = render_settings(
            server_settings(
                spec,
                socket_dir=paths.run_dir,
                archive_dir=archive_dir,
                restore_dir=restore_dir,
                recovery_target=target,
                standby=upstream.source(paths.root) if upstream else None,
                fenced=(paths.root / FENCE_MARKER).is_file(),
            )
        )
        hba = render_hba()
        main_text = main_file.read_text(encoding="utf-8")
        user = EngineUser.lookup(paths.os_user)
        make_private_dir(archive_dir, user)
        write_private_file(paths.data_dir / SETTINGS_FILE, settings, user)
        write_private_file(paths.data_dir / HBA_FILE, hba, user)
        if (included := with_include(main_text)) != main_text:
            write_private_file(main_file, included, user)

    def command(self, paths: InstancePaths, spec: InstanceSpec) -> list[str]:
        """The foreground postmaster: ``postgres -D <data_dir>``."""
        server = self.installed_bin_dir(spec.version) / "postgres"
        return [str(server), "-D", str(paths.data_dir)]

    def running_pid(self, paths: InstancePaths) -> int | None:
        """The pid in ``postmaster.pid`` if that process is alive and is a postmaster
        for this data directory (a recycled pid is not mistaken for it)."""
        try:
            first_line = (paths.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first_line)
        except (OSError, ValueError):
            return None
        return pid if _serves(pid, paths.data_dir) else None

    def probe(self, paths: InstancePaths, spec: InstanceSpec) -> Probe:
        """``SELECT 1`` over the unix socket; returns within ~2 s and never raises."""
        try:
            with connect(
                paths,
                spec,
                timeout_s=_PROBE_TIMEOUT_S,
                statement_timeout_ms=_PROBE_STATEMENT_TIMEOUT_MS,
            ) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # the contract: a probe reports, it never raises
            return Probe(accepting=False, detail=describe(exc))
        return Probe(accepting=True, detail="accepting connections")

    def bootstrap(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Wait until any recovery has ended (a restore's replay: may block for as long
        as it takes, up to hours for a long chain), then finish a restore (settings
        rendered without recovery, restored WAL removed), then make sure no one but a
        database's owner and explicit grantees can create objects in ``public`` of the
        databases new ones are copied from (PostgreSQL 15's default already; kept
        explicit so the rule does not depend on the version).

        On a replica (``standby.signal``) it returns at once: a replica never ends its
        recovery by itself, and it is read-only (its primary's bootstrap did the rest)."""
        if is_standby(paths):
            return
        _wait_out_recovery(paths, spec)
        restore_dir = restore_wal_dir(paths.root)
        if restore_dir.exists():
            # recovery.signal is gone: the settings lose the recovery ones. Not reloaded:
            # those still loaded are inert on a primary, and a reload would log the
            # restart-only ones as errors.
            self.configure(paths, spec)
            shutil.rmtree(restore_dir)
        for dbname in ("template1", "postgres"):
            with translate_errors("bootstrap"), connect(paths, spec, dbname=dbname) as conn:
                conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")

    def adopt_copy(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Make a crash-consistent copy of another instance's volume, handed over to
        ``paths.os_user``, this instance's own (``clone`` lists what is removed, reset or
        kept): no pid file or socket of the source, no upstream, fence, replication
        slots or archived WAL; ``recovery.signal`` so that the first start recovers and
        promotes to a new timeline. Idempotent: once done for this instance, a later
        call (even after the clone ran) changes nothing. Holds the prepare lock
        meanwhile. ``EngineError``, changing nothing, if the data directory is not one
        of ``spec.version`` owned by the instance's account, or if its engine runs."""
        user = EngineUser.lookup(paths.os_user)
        check_copy(paths, spec, user)
        check_traversable(paths.root, user)
        with exclusive_lock(paths.root / PREPARE_LOCK):
            if adopted(paths, spec):
                return
            if (pid := self.running_pid(paths)) is not None:
                raise EngineError(
                    f"PostgreSQL (pid {pid}) runs on {str(paths.data_dir)!r}: a copy is "
                    "adopted with its engine stopped"
                )
            adopt_copied_files(paths, spec, user)

    def apply_parameters(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Reload the configuration ``configure`` wrote: settings that need no restart
        (and removed ones, which return to their defaults) take effect at once."""
        with translate_errors("reload"), connect(paths, spec) as conn:
            conn.execute("SELECT pg_reload_conf()")

    def installed_bin_dir(self, version: str) -> Path:
        """The binaries of ``version``: ``BadRequest`` for a version Coffer does not know,
        ``EngineError`` for one this host lacks."""
        if version not in CATALOG.versions:
            known = ", ".join(CATALOG.versions)
            raise BadRequest(f"PostgreSQL version {version!r} is not supported (known: {known})")
        bin_dir = self._bin_dir(version)
        if not (bin_dir / "postgres").is_file():
            raise EngineError(f"PostgreSQL {version} is not installed on this host ({bin_dir})")
        return bin_dir

    def _bin_dir(self, version: str) -> Path:
        return self._install_root / version / "bin"


def is_standby(paths: InstancePaths) -> bool:
    """Whether the data directory starts (or runs) as a replica: ``standby.signal``."""
    return (paths.data_dir / STANDBY_SIGNAL).is_file()


def _recovery_pending(paths: InstancePaths) -> bool:
    """Whether a restore left WAL to replay that the server has not finished with."""
    return (paths.data_dir / RECOVERY_SIGNAL).is_file() and restore_wal_dir(paths.root).is_dir()


def _recovery_target(restore_dir: Path) -> str | None:
    try:
        return (restore_dir / RECOVERY_TARGET).read_text(encoding="ascii").strip() or None
    except FileNotFoundError:
        return None


def _wait_out_recovery(paths: InstancePaths, spec: InstanceSpec) -> None:
    """Block until ``pg_is_in_recovery()`` is false; ``EngineError`` past the deadline."""
    deadline = time.monotonic() + _RECOVERY_WAIT_S
    while True:
        with translate_errors("waiting for recovery to end"), connect(paths, spec) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if row is not None and not row[0]:
            return
        if time.monotonic() > deadline:
            raise EngineError(
                f"PostgreSQL is still replaying WAL after {_RECOVERY_WAIT_S} s; "
                f"see {paths.log_file}"
            )
        time.sleep(_RECOVERY_POLL_S)


def _serves(pid: int, data_dir: Path) -> bool:
    """Whether live process ``pid`` runs ``postgres -D <data_dir>``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [os.fsdecode(arg) for arg in argv if arg]
    if not args or Path(args[0]).name not in _SERVER_NAMES or "-D" not in args[:-1]:
        return False
    given = Path(args[args.index("-D") + 1])
    if not given.is_absolute():
        given = Path(f"/proc/{pid}/cwd") / given
    return _same_path(given, data_dir)


def _same_path(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
