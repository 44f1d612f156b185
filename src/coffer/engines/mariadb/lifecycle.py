"""Host-side lifecycle of a MariaDB instance: files, argv, adoption and probing.

The agent, not this module, spawns ``command()`` as the instance's OS account in a new
session, sends its output to ``paths.log_file`` and stops it with ``stop_signal``
(SIGTERM is mariadbd's normal shutdown: end sessions, flush InnoDB, remove the pid file).

Leftovers of a backup the agent did not live to finish (``backup`` module): its scratch
directory ``<root>/.coffer-backup``, with the option file holding the backup's one-time
password, and that password on ``root@localhost``. ``configure`` (before every start)
removes the directory; ``bootstrap`` (and every backup, at its start) makes
``root@localhost`` socket-only again, outside the binary log (``reset_admin_login``).

A point-in-time restore leaves ``<root>/restore_binlog`` (``binlog`` module); the first
``bootstrap`` applies it before anything else, once.

A replica (``replication`` module) is marked by ``<root>/replica.json``, a fenced
primary by ``<root>/fenced``: ``configure`` renders either ``read_only`` and
``apply_parameters`` keeps it so; ``bootstrap`` starts
following the upstream a ``follow`` on the stopped engine recorded.

A copy of another instance's volume (an instant clone: taken while that engine ran,
crash-consistent) is made this instance's own by ``adopt_copy``, engine stopped, files
already the instance's account's. What it does with each file Coffer or MariaDB keeps
under the root:

Removed
    ``my.cnf`` (it names the source's paths, port and ``server_id``: nothing may start
    the copy before ``configure`` renders this instance's); everything in the run
    directory (the source's socket, pid file and temporary files); ``replica.json``,
    ``follow-pending.json`` (with the upstream's password) and ``fenced`` (so the copy
    follows nothing, and is neither a replica nor fenced: ``configure`` renders
    ``read_only`` from ``spec.read_only`` alone); ``galera.json`` (the source's Galera
    membership and state transfer password: a copy joins no cluster); the
    ``.coffer-tmp`` temporaries of those files; in the data directory, MariaDB's replica
    state (``master.info`` with the upstream's password, ``relay-log.info``, the relay
    logs, and the same for named connections), without which the server starts no
    replica threads; the scratch directories of a backup (with its one-time password)
    and of a restore, and the unapplied staging of a point-in-time restore that never
    completed (``.restore_binlog.partial``).
Reset at the first ``bootstrap``
    The source's replication account ``coffer_replicator`` (it holds the password the
    source's replicas use; the copy is the source of no replica: ``open_source`` makes
    it afresh if the copy gets replicas), dropped outside the binary log, as recorded by
    the ``adopted-copy`` marker that ``adopt_copy`` writes and ``bootstrap`` removes once
    done; ``root@localhost`` made socket-only (a backup running at the copy left a
    password on it), as for every instance.
Kept
    The data directory otherwise: InnoDB and Aria files and logs, and the binary log,
    which crash recovery at the first start needs (transactions prepared in InnoDB are
    committed or rolled back by it); the accounts and grants (tenants', ``root@%``),
    ``mysql.gtid_slave_pos``, the slow log, ``ib_buffer_pool``. The server opens a new
    binary log file at every start and ``server_id`` follows the instance id, so the
    copy's own changes go to files of its own under its own server id, continuing the
    source's GTID sequence; the log archive ships from the copy's first full backup's
    file on (``binlog``), so the source's files are never shipped as the copy's (they
    expire with ``binlog_expire_logs_seconds``). ``restore_binlog`` whose apply has not
    begun (a source not yet bootstrapped after a point-in-time restore) stays, and the
    copy's first ``bootstrap`` rolls forward as the source's would have; one whose apply
    had begun is refused (``EngineError``: the copy's data lies somewhere in the middle
    of the roll forward). ``.coffer-prepare.lock`` and the agent's own files stay.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from coffer.contracts.engine import InstanceSpec, Probe
from coffer.engines.base import InstancePaths
from coffer.engines.host import (
    EngineUser,
    check_traversable,
    make_private_dir,
    write_private_file,
)
from coffer.engines.mariadb import statements as q
from coffer.engines.mariadb.binlog import (
    DEFAULT_BINLOG_TOOL,
    DEFAULT_CLIENT,
    RESTORE_BINLOG,
    RESTORE_BINLOG_PARTIAL,
    discard_staged_logs,
    roll_forward,
    roll_forward_begun,
)
from coffer.engines.mariadb.catalog import (
    CATALOG,
    INTERNAL_ADMIN,
    INTERNAL_ADMIN_HOST,
    REPLICATION_USER,
    ROOT_HOST,
    ROOT_USER,
    parse_size,
)
from coffer.engines.mariadb.config import (
    CONFIG_FILE,
    RELAY_LOG_BASENAME,
    base_settings,
    config_path,
    pid_path,
    render_settings,
    server_settings,
)
from coffer.engines.mariadb.connection import Session, connect, describe, translate_errors
from coffer.engines.mariadb.galera import (
    GALERA_MARKER,
    bootstrapping,
    cluster_settings,
    settle,
)
from coffer.engines.mariadb.guestlogs import log_switches
from coffer.engines.mariadb.replication import (
    FENCE_MARKER,
    PENDING_FOLLOW,
    REPLICA_MARKER,
    apply_pending_follow,
    kept_read_only,
)
from coffer.engines.mariadb.template import clone_template, ensure_template
from coffer.engines.templates import exclusive_lock, fsync_dir
from coffer.errors import BadRequest, EngineError

__all__ = [
    "ADOPTED_COPY",
    "BACKUP_SCRATCH",
    "DEFAULT_INSTALL_DB",
    "DEFAULT_SERVER",
    "PREPARE_LOCK",
    "RESTORE_SCRATCH",
    "MariaDBLifecycle",
    "remove_backup_scratch",
    "reset_admin_login",
]

DEFAULT_SERVER = Path("/usr/sbin/mariadbd")
DEFAULT_INSTALL_DB = Path("/usr/bin/mariadb-install-db")
#: Held while a data directory is being made (``prepare``, or a backup restore).
PREPARE_LOCK = ".coffer-prepare.lock"
#: A backup's scratch directory under the instance root; outside a backup, a leftover.
BACKUP_SCRATCH = ".coffer-backup"
#: A restore's scratch directory under the instance root; outside a restore, a leftover.
RESTORE_SCRATCH = ".coffer-restore"
#: Written by ``adopt_copy``: the first ``bootstrap`` still has to drop the source's
#: replication account.
ADOPTED_COPY = "adopted-copy"
_ADOPTED_NOTE = "a copy of another instance: bootstrap drops its replication account\n"
#: Root files a copy of another instance's volume loses (module docstring).
_SOURCE_FILES = (CONFIG_FILE, REPLICA_MARKER, PENDING_FOLLOW, FENCE_MARKER, GALERA_MARKER)
#: Root directories a copy loses: scratch of a backup, of a restore, of its staging.
_SOURCE_DIRS = (BACKUP_SCRATCH, RESTORE_SCRATCH, RESTORE_BINLOG_PARTIAL)
#: ``write_private_file``'s temporary name for a file.
_TEMPORARY = ".{}.coffer-tmp"
#: MariaDB's replica state in the data directory, of the default connection and of
#: named ones (``master-<name>.info``, ``relay-bin-<name>.000001``...).
_REPLICA_STATE = re.compile(
    r"(multi-)?master(-.+)?\.info|relay-log(-.+)?\.info"
    rf"|{re.escape(RELAY_LOG_BASENAME)}(-.+)?\.(index|[0-9]+)"
)
_SERVER_NAMES = frozenset({"mariadbd", "mysqld"})
_PROBE_TIMEOUT_S = 2
_VERSION_TEXT = re.compile(r"\bVer\s+(\d+\.\d+)\.\d+")
#: Database grants to anonymous accounts (install-db's open ``test``/``test_%`` grants).
_ANONYMOUS_GRANTS = "FROM mysql.db WHERE User = ''"


class MariaDBLifecycle:
    """The MariaDB ``Lifecycle``. Every method is idempotent; none keeps state but a
    cache of the installed server's version."""

    stop_signal: signal.Signals = signal.SIGTERM

    def __init__(
        self,
        *,
        engine_user: str,
        templates_dir: Path,
        server: Path = DEFAULT_SERVER,
        install_db: Path = DEFAULT_INSTALL_DB,
        binlog_tool: Path = DEFAULT_BINLOG_TOOL,
        client: Path = DEFAULT_CLIENT,
    ) -> None:
        self._engine_user = engine_user
        self._templates_dir = templates_dir
        self._server = server
        self._install_db = install_db
        self._binlog_tool = binlog_tool
        self._client = client
        self._version_cache: tuple[float, str | None] | None = None

    def installed_versions(self) -> list[str]:
        """The catalog version the installed ``mariadbd`` reports, if it is one."""
        version = self._server_version()
        return [version] if version in CATALOG.versions else []

    def warm_up(self, version: str) -> None:
        """Build the mariadb-install-db template of ``version`` now."""
        self._check_installed(version)
        ensure_template(
            templates_dir=self._templates_dir,
            version=version,
            install_db=self._install_db,
            user=EngineUser.lookup(self._engine_user),
        )

    def prepare(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Clone the version's template into ``paths.data_dir`` unless it exists, and
        create ``paths.run_dir``. May block for mariadb-install-db (first use of a
        version on this host) and holds a per-instance lock file in ``paths.root``."""
        user = EngineUser.lookup(paths.os_user)
        template_owner = EngineUser.lookup(self._engine_user)
        self._check_installed(spec.version)
        paths.root.mkdir(parents=True, exist_ok=True)
        check_traversable(paths.root, user)
        with exclusive_lock(paths.root / PREPARE_LOCK):
            if not paths.data_dir.exists():
                discard_staged_logs(paths)  # a restore's, which never completed
                template = ensure_template(
                    templates_dir=self._templates_dir,
                    version=spec.version,
                    install_db=self._install_db,
                    user=template_owner,
                )
                clone_template(template, paths.data_dir, user=user)
            make_private_dir(paths.run_dir, user)

    def configure(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Rewrite ``<root>/my.cnf`` (rendered and validated before the write), and remove
        what an interrupted backup left in ``<root>`` (no backup runs meanwhile: the agent
        runs one operation per instance at a time)."""
        if not (paths.data_dir / "mysql").is_dir():
            raise EngineError(f"{str(paths.data_dir)!r} is not a prepared data directory")
        settings = server_settings(spec, paths, replica=kept_read_only(paths))
        settings.update(cluster_settings(paths, spec))
        text = render_settings(settings)
        write_private_file(config_path(paths), text, EngineUser.lookup(paths.os_user))
        remove_backup_scratch(paths)

    def command(self, paths: InstancePaths, spec: InstanceSpec) -> list[str]:
        """The foreground server reading only Coffer's file:
        ``mariadbd --defaults-file=<root>/my.cnf``, plus ``--wsrep-new-cluster`` while a
        Galera member is to start a new cluster (``galera``)."""
        self._check_installed(spec.version)
        argv = [str(self._server), f"--defaults-file={config_path(paths)}"]
        if bootstrapping(paths):
            argv.append("--wsrep-new-cluster")
        return argv

    def running_pid(self, paths: InstancePaths) -> int | None:
        """The pid in the pid file if that process is alive and is a mariadbd reading this
        instance's ``my.cnf`` (a recycled pid is not mistaken for it)."""
        try:
            pid = int(pid_path(paths).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _serves(pid, config_path(paths)) else None

    def probe(self, paths: InstancePaths, spec: InstanceSpec) -> Probe:
        """``SELECT 1`` over the unix socket; returns within ~2 s and never raises."""
        try:
            with connect(
                paths, timeout_s=_PROBE_TIMEOUT_S, read_timeout_s=_PROBE_TIMEOUT_S
            ) as session:
                session.execute("SELECT 1")
        except Exception as exc:  # the contract: a probe reports, it never raises
            return Probe(accepting=False, detail=describe(exc))
        return Probe(accepting=True, detail="accepting connections")

    def bootstrap(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Roll a point-in-time restore forward, then make the account table what Coffer
        expects, whatever made the data directory: no anonymous accounts or open ``test``
        grants, ``root`` only as the agent's socket-authenticated ``root@localhost`` (and
        ``root@%`` if the root API enabled it; a password an interrupted backup left on
        it is dropped). A database named ``test`` is left alone: it may be a tenant's.

        The roll forward (``binlog.roll_forward``: the logs a restore staged in
        ``<root>/restore_binlog``, applied once) comes first, so that nothing the log
        replays outlives the account reset. It blocks for the apply, and an apply that
        was interrupted is refused with ``EngineError`` (restore again) rather than run
        twice.

        The first ``bootstrap`` of an adopted copy also drops the source's replication
        account (``adopt_copy``).

        The account fixes stay out of the binary log (every instance makes its own).
        Last, a replica restored with ``follow`` on the stopped engine starts following
        (``replication.apply_pending_follow``: ``EngineError`` if the upstream refuses
        it); this does not wait for it to catch up.

        A Galera member first waits until it is Synced (``galera.settle``: the node
        refuses queries before; a bootstrapping one then makes the state transfer
        account and stops bootstrapping at later starts)."""
        settle(paths)
        roll_forward(paths, binlog_tool=self._binlog_tool, client=self._client)
        with translate_errors("bootstrap"), connect(paths) as session:
            session.execute("SET SESSION sql_log_bin = 0")
            for (host,) in session.execute(q.ACCOUNTS_NAMED, ("",)):
                session.execute(*q.drop_user("", host))
            for (host,) in session.execute(q.ACCOUNTS_NAMED, (ROOT_USER,)):
                if host not in (INTERNAL_ADMIN_HOST, ROOT_HOST):
                    session.execute(*q.drop_user(ROOT_USER, host))
            if session.execute(f"SELECT 1 {_ANONYMOUS_GRANTS}"):
                session.execute(f"DELETE {_ANONYMOUS_GRANTS}")
                session.execute("FLUSH PRIVILEGES")
            adopted = paths.root / ADOPTED_COPY
            if adopted.exists():
                for (host,) in session.execute(q.ACCOUNTS_NAMED, (REPLICATION_USER,)):
                    session.execute(*q.drop_user(REPLICATION_USER, host))
                adopted.unlink()
        reset_admin_login(paths)
        apply_pending_follow(paths, spec)

    def adopt_copy(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Make a copy of another instance's volume this instance's own, before its first
        ``configure`` and start (engine stopped; the files already the instance's
        account's): remove what made the source a replica, fenced or a source of
        replicas and what named its paths, keep the data and its logs for crash recovery
        (module docstring, file by file), and leave the ``adopted-copy`` marker for the
        first ``bootstrap``. Idempotent; the removals are fsynced.

        ``EngineError``, before anything changes, if ``paths.data_dir`` is not a MariaDB
        data directory, or if the source was in the middle of a point-in-time roll
        forward (clone it once it serves)."""
        _check_copy(paths)
        owner = EngineUser.lookup(paths.os_user)
        for name in _SOURCE_FILES:
            for path in (paths.root / name, paths.root / _TEMPORARY.format(name)):
                path.unlink(missing_ok=True)
        remove_backup_scratch(paths)
        for name in _SOURCE_DIRS:
            shutil.rmtree(paths.root / name, ignore_errors=True)
        for entry in paths.data_dir.iterdir():
            if _REPLICA_STATE.fullmatch(entry.name) and not entry.is_dir():
                entry.unlink()
        _empty_run_dir(paths, owner)
        write_private_file(paths.root / ADOPTED_COPY, _ADOPTED_NOTE, owner)
        for directory in (paths.data_dir, paths.run_dir, paths.root):
            fsync_dir(directory)

    def apply_parameters(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """``SET GLOBAL`` every dynamic parameter: its value in ``spec.parameters``, else
        Coffer's default for it (``config.base_settings``), else MariaDB's ``DEFAULT``.
        Restart-required ones take effect at the next start (``configure`` wrote them).
        ``read_only`` follows ``spec.read_only``, and stays on for a replica or a fenced
        primary. The logs' files and switches follow ``spec.logs`` (``guestlogs``)."""
        CATALOG.validate_parameters(spec.parameters)
        base = base_settings(spec)
        with translate_errors("applying parameters"), connect(paths) as session:
            for rule in CATALOG.parameter_rules(spec.version):
                if rule.restart_required:
                    continue
                _set_global(session, rule.name, rule.type, spec.parameters.get(rule.name), base)
            for name, value in log_switches(spec, paths).items():
                session.execute(*q.set_global(name, value))
            read_only = spec.read_only or kept_read_only(paths)
            session.execute(f"SET GLOBAL read_only = {'ON' if read_only else 'OFF'}")

    def _check_installed(self, version: str) -> None:
        if version not in CATALOG.versions:
            known = ", ".join(CATALOG.versions)
            raise BadRequest(f"MariaDB version {version!r} is not supported (known: {known})")
        if version not in self.installed_versions():
            raise EngineError(f"MariaDB {version} is not installed on this host ({self._server})")

    def _server_version(self) -> str | None:
        """``major.minor`` of the installed server (cached while the binary is unchanged)."""
        try:
            mtime = self._server.stat().st_mtime
        except OSError:
            return None
        if self._version_cache is None or self._version_cache[0] != mtime:
            self._version_cache = (mtime, _read_version(self._server))
        return self._version_cache[1]


def remove_backup_scratch(paths: InstancePaths) -> None:
    """Remove ``<root>/.coffer-backup`` and all in it (a symlink there is removed, not
    followed). Idempotent; call it only while no backup of the instance runs."""
    scratch = paths.root / BACKUP_SCRATCH
    if scratch.is_symlink():
        scratch.unlink()
    shutil.rmtree(scratch, ignore_errors=True)


def _check_copy(paths: InstancePaths) -> None:
    """``EngineError`` unless ``paths.data_dir`` is a MariaDB data directory a copy may
    be made of (module docstring)."""
    data_dir = paths.data_dir
    is_data_dir = (
        data_dir.is_dir()
        and not data_dir.is_symlink()
        and (data_dir / "mysql").is_dir()
        and (data_dir / "ibdata1").is_file()
    )
    if not is_data_dir:
        raise EngineError(
            f"{str(data_dir)!r} is not a MariaDB data directory (no mysql/ and ibdata1): "
            "the copied volume is not of a MariaDB instance"
        )
    if roll_forward_begun(paths):
        raise EngineError(
            f"the copy holds a point-in-time roll forward ({RESTORE_BINLOG}) the source had "
            "begun but not finished, so its data lies partway through it; clone the source "
            "once it serves"
        )


def _empty_run_dir(paths: InstancePaths, owner: EngineUser) -> None:
    """Leave ``paths.run_dir`` an empty 0700 directory of ``owner``."""
    run_dir = paths.run_dir
    if run_dir.is_symlink() or (run_dir.exists() and not run_dir.is_dir()):
        run_dir.unlink()
    elif run_dir.is_dir():
        for entry in run_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    make_private_dir(run_dir, owner)


def reset_admin_login(paths: InstancePaths) -> None:
    """Let the agent's ``root@localhost`` in through ``unix_socket`` only (dropping any
    password a backup gave it), outside the binary log so replicas never see it.
    Idempotent; needs the running server; ``EngineError`` if it cannot be reached."""
    with translate_errors("making root@localhost socket-only"), connect(paths) as session:
        session.execute("SET SESSION sql_log_bin = 0")
        session.execute(*q.socket_authenticated(INTERNAL_ADMIN, INTERNAL_ADMIN_HOST))


def _set_global(
    session: Session,
    name: str,
    kind: str,
    value: object,
    base: dict[str, bool | int | float | str],
) -> None:
    if value is None and name in base:
        value = base[name]
        if kind == "integer" and isinstance(value, str):
            value = parse_size(value)
    if value is None:
        session.execute(q.set_global_default(name))
    elif isinstance(value, bool | int | float | str):
        session.execute(*q.set_global(name, value))
    else:
        raise BadRequest(f"parameter {name!r} has a value of unsupported type")


def _read_version(server: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(server), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION_TEXT.search(result.stdout)
    return match.group(1) if match else None


def _serves(pid: int, config_file: Path) -> bool:
    """Whether live process ``pid`` is a mariadbd started with ``config_file``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [os.fsdecode(arg) for arg in argv if arg]
    if not args or Path(args[0]).name not in _SERVER_NAMES:
        return False
    prefix = "--defaults-file="
    given = next((arg[len(prefix) :] for arg in args[1:] if arg.startswith(prefix)), None)
    if given is None:
        return False
    given_path = Path(given)
    if not given_path.is_absolute():
        given_path = Path(f"/proc/{pid}/cwd") / given_path
    try:
        return os.path.samefile(given_path, config_file)
    except OSError:
        return False
