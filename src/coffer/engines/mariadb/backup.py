"""Physical MariaDB backups with ``mariadb-backup`` (the ``Backups`` seam).

Backup
    ``mariadb-backup --backup --stream=xbstream`` runs as the instance's OS account and
    its stdout is copied to ``sink`` in 1 MiB chunks; nothing of the data is staged. Its
    scratch space is ``<root>/.coffer-backup`` (private to the instance's account, made
    afresh and removed before returning): ``--extra-lsndir`` leaves the backup's
    ``xtrabackup_checkpoints`` and ``xtrabackup_info`` there, from which ``positions``
    are read. An incremental is the same command with ``--incremental-lsn`` = the
    parent's ``to_lsn``: InnoDB pages changed since, every non-InnoDB table whole, and
    the redo log written meanwhile. MariaDB's ``BACKUP STAGE`` locks make the copy
    consistent while writes go on.

    The tool cannot use the agent's login (``root@localhost`` by ``unix_socket``, which
    admits only OS root). For the length of one backup ``root@localhost`` also accepts a
    random password (``unix_socket OR mysql_native_password``); the tool reads it from a
    0600 option file in the scratch directory, never from its command line. Afterwards
    the account is socket-only again, also on failure. Both changes bypass the binary
    log (``sql_log_bin = 0``), so replicas never see them. Should the agent die during a
    backup, the option file and the password stay only until the engine's next chance
    (``lifecycle``): ``configure`` before the next start removes the scratch directory,
    and ``bootstrap`` and every backup, at its start, make the account socket-only. The
    copy in the backup carries that password's hash; ``lifecycle.bootstrap`` of a
    restored instance makes the account socket-only, and the password itself was never
    stored.

    ``positions``: ``instance_id`` (an incremental's parent must come from the same
    instance, and its ``to_lsn`` must not lie ahead of the instance's log, checked
    before and after the tool runs), ``backup_type`` (``full``/``incremental``),
    ``from_lsn``, ``to_lsn`` (the checkpoint an incremental on this backup starts from),
    ``last_lsn``, and, from the binary log, ``binlog_file``, ``binlog_position`` and
    ``gtid``, plus ``server_version``.

Restore
    Each stream of the chain is piped into ``mbstream -x`` (as the new instance's OS
    account) in its own directory under ``<root>/.coffer-restore``; the full is prepared
    with ``mariadb-backup --prepare``, then each incremental applied in order
    (``--prepare --incremental-dir``). The prepared full, stripped of the tool's own
    files (``backup-my.cnf``, ``xtrabackup_*``), is fsynced and renamed into
    ``paths.data_dir`` (0700); the run directory is made as ``prepare`` makes it. Any
    failure, including a stream raising ``IntegrityError``, removes the restore
    directory and leaves no data directory. The binary log starts afresh (binary logs
    are not part of a backup); ``configure`` writes ``my.cnf`` beside the data directory
    as for any instance.

    With a ``Recovery``, the chain's end in the source's binary log is read from the
    prepared full's ``xtrabackup_binlog_info`` (after an incremental's prepare it holds
    the incremental's, which the tool copies over) before the tool's files are stripped,
    and the shipped logs from there to the target are staged in
    ``<root>/.restore_binlog.partial``; it is renamed to ``<root>/restore_binlog`` just
    before the data directory (both arrive or neither), and ``lifecycle.bootstrap``
    rolls the instance forward with them at its first start (``binlog`` module: what
    is staged, and the precision of a target: transactions whose commit began at or
    before the target's whole second).

    Accounts: the restored ``mysql`` tables hold the source's. Tenant users keep their
    passwords and grants. The agent's ``root@localhost`` is the same on every instance
    (``unix_socket`` for OS root), so the agent of the new instance logs in at once, and
    ``bootstrap`` resets it to socket-only.

Counts
    Rows per base table of every user database, ``"db.table" -> rows``, counted in one
    ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` right after the backup finishes.
    Precision: exact for InnoDB and non-InnoDB tables alike when no writes run between
    the end of the backup and the count (as in verification); under concurrent writes
    the counts describe a moment slightly after the backup's consistent point.

Check
    ``CHECK TABLE ... EXTENDED`` of every base table outside ``information_schema`` and
    ``performance_schema`` (``mysql`` included) over the agent's socket session; any
    ``error`` row or non-OK status is damage.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import BackupOutcome, InstancePaths, Recovery
from coffer.engines.host import (
    EngineUser,
    check_traversable,
    make_private_dir,
    run_as,
    stream_in,
    stream_out,
    write_private_file,
)
from coffer.engines.mariadb import statements as q
from coffer.engines.mariadb.binlog import (
    RESTORE_BINLOG,
    RESTORE_BINLOG_PARTIAL,
    chain_end,
    discard_staged_logs,
    stage_logs,
    stop_datetime,
)
from coffer.engines.mariadb.catalog import INTERNAL_ADMIN, INTERNAL_ADMIN_HOST, SYSTEM_DATABASES
from coffer.engines.mariadb.config import config_path, socket_path
from coffer.engines.mariadb.connection import Session, connect, translate_errors
from coffer.engines.mariadb.lifecycle import (
    BACKUP_SCRATCH,
    PREPARE_LOCK,
    RESTORE_SCRATCH,
    remove_backup_scratch,
    reset_admin_login,
)
from coffer.engines.mariadb.template import fsync_tree
from coffer.engines.templates import exclusive_lock, fsync_dir
from coffer.errors import CofferError, EngineError

__all__ = ["DEFAULT_BACKUP_TOOL", "DEFAULT_MBSTREAM", "MariaDBBackups"]

DEFAULT_BACKUP_TOOL = Path("/usr/bin/mariadb-backup")
DEFAULT_MBSTREAM = Path("/usr/bin/mbstream")

_CLIENT_FILE = "client.cnf"
_CHECKPOINTS = "xtrabackup_checkpoints"
_INFO = "xtrabackup_info"
_TOOL_FILES = re.compile(r"xtrabackup_.*|backup-my\.cnf")
_METADATA_LIMIT = 64 * 1024
_SECRET_BYTES = 24
_LSN = re.compile(r"[0-9]{1,20}")
_BINLOG_POS = re.compile(
    r"filename '(?P<file>[^']*)', position '(?P<position>[0-9]+)'"
    r"(?:, GTID of the last change '(?P<gtid>[^']*)')?"
)
_LOG_SEQUENCE_NUMBER = re.compile(r"^Log sequence number\s+([0-9]+)", re.MULTILINE)
_NOT_CHECKED = ("information_schema", "performance_schema")
_BASE_TABLES = "TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')"
_TABLES_OF_USER_DATABASES = (
    "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
    f" WHERE {_BASE_TABLES} AND TABLE_SCHEMA NOT IN %s ORDER BY TABLE_SCHEMA, TABLE_NAME"
)
_ALSO_PASSWORD = "ALTER USER %s@%s IDENTIFIED VIA unix_socket OR mysql_native_password USING %s"


class MariaDBBackups:
    """The MariaDB ``Backups``: stateless; one backup or restore per instance at a time
    (each uses a fixed scratch directory under the instance root, which it clears
    first). Tools run as ``paths.os_user`` with umask 077 and a minimal environment."""

    def __init__(
        self, *, tool: Path = DEFAULT_BACKUP_TOOL, mbstream: Path = DEFAULT_MBSTREAM
    ) -> None:
        self._tool = tool
        self._mbstream = mbstream

    def backup(
        self,
        paths: InstancePaths,
        spec: InstanceSpec,
        sink: BinaryIO,
        parent: Mapping[str, str] | None = None,
    ) -> BackupOutcome:
        """Stream a full backup (``parent`` None) or an incremental on ``parent`` to
        ``sink``; return its positions and the counts taken right after it. Blocks for
        the length of the backup. Raises ``EngineError`` (a bad ``parent`` before
        anything runs); errors raised by ``sink`` propagate unchanged."""
        parent_lsn = None if parent is None else _parent_lsn(parent, spec)
        # a backup interrupted with the agent may have left its login and option file
        reset_admin_login(paths)
        remove_backup_scratch(paths)
        if parent_lsn is not None:
            _require_reached(paths, parent_lsn)
        user = EngineUser.lookup(paths.os_user)
        work = paths.root / BACKUP_SCRATCH
        secret = secrets.token_hex(_SECRET_BYTES)
        _fresh_dir(work)
        try:
            client = work / _CLIENT_FILE
            write_private_file(client, _client_options(paths, secret), user)
            lsn_dir, tmp_dir = work / "lsn", work / "tmp"
            for directory in (work, tmp_dir):
                make_private_dir(directory, user)
            argv = [
                str(self._tool),
                f"--defaults-file={client}",
                "--backup",
                "--stream=xbstream",
                f"--target-dir={work / 'target'}",
                f"--extra-lsndir={lsn_dir}",
                f"--tmpdir={tmp_dir}",
            ]
            if parent_lsn is not None:
                argv.append(f"--incremental-lsn={parent_lsn}")
            with _password_login(paths, secret):
                stream_out(user, argv, sink, what="mariadb-backup --backup")
            positions = _positions(lsn_dir, spec)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if parent_lsn is not None and int(parent_lsn) > int(positions["to_lsn"]):
            raise _parent_ahead(parent_lsn, "checkpoint", positions["to_lsn"])
        return BackupOutcome(positions=positions, counts=self.counts(paths, spec))

    def restore(
        self,
        paths: InstancePaths,
        spec: InstanceSpec,
        chain: Sequence[BinaryIO],
        recovery: Recovery | None = None,
    ) -> None:
        """Build ``paths.data_dir`` (absent) from ``chain`` (full, then incrementals in
        order) and the run directory. Holds the instance's prepare lock; blocks for the
        extraction and prepare. On any failure nothing is left; a stream's own error
        (e.g. ``IntegrityError``) propagates unchanged, tool failures raise
        ``EngineError``."""
        if not chain:
            raise EngineError("a restore needs at least a full backup; the chain is empty")
        if recovery is not None:
            stop_datetime(recovery.target)  # a target without a time zone: before any work
        user = EngineUser.lookup(paths.os_user)
        paths.root.mkdir(parents=True, exist_ok=True)
        check_traversable(paths.root, user)
        with exclusive_lock(paths.root / PREPARE_LOCK):
            if paths.data_dir.exists():
                raise EngineError(
                    f"{str(paths.data_dir)!r} already exists; restore only into a new instance"
                )
            discard_staged_logs(paths)
            work = paths.root / RESTORE_SCRATCH
            staged = paths.root / RESTORE_BINLOG_PARTIAL
            _fresh_dir(work)
            try:
                make_private_dir(work, user)
                full = self._extract_and_prepare(work, user, spec, chain)
                if recovery is not None:
                    make_private_dir(staged, user)
                    stage_logs(staged, recovery=recovery, start=chain_end(full), user=user)
                self._move_into_place(paths, user, full, staged if recovery else None)
            except BaseException:
                if not paths.data_dir.exists():
                    discard_staged_logs(paths)
                raise
            finally:
                shutil.rmtree(work, ignore_errors=True)
                shutil.rmtree(staged, ignore_errors=True)

    def counts(self, paths: InstancePaths, spec: InstanceSpec) -> dict[str, int]:
        """``"db.table" -> rows`` of every base table in every user database, in one
        consistent snapshot."""
        with translate_errors("counting rows"), connect(paths) as session:
            session.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            counted = {
                f"{db}.{table}": _row_count(session, db, table)
                for db, table in _tables(session, SYSTEM_DATABASES)
            }
            session.execute("COMMIT")
        return counted

    def check(self, paths: InstancePaths, spec: InstanceSpec) -> str:
        """``CHECK TABLE ... EXTENDED`` of every table (``mysql`` included); a summary,
        or ``EngineError`` listing the damaged tables. May take long on big data."""
        damage: list[str] = []
        with translate_errors("checking tables"), connect(paths) as session:
            tables = _tables(session, _NOT_CHECKED)
            for db, table in tables:
                target = f"{q.quote_identifier(db)}.{q.quote_identifier(table)}"
                for _name, _op, kind, text in session.execute(f"CHECK TABLE {target} EXTENDED"):
                    if kind == "error" or (kind == "status" and text != "OK"):
                        damage.append(f"{db}.{table}: {text}")
        databases = len({db for db, _ in tables})
        if damage:
            shown = "; ".join(damage[:10])
            raise EngineError(f"CHECK TABLE found damage in {len(damage)} place(s): {shown}")
        return f"CHECK TABLE EXTENDED: {len(tables)} tables in {databases} databases OK"

    def _move_into_place(
        self, paths: InstancePaths, user: EngineUser, full: Path, staged: Path | None
    ) -> None:
        """Strip the tool's files from prepared ``full`` and rename it (and the staged
        logs, first: the data directory's arrival completes the restore) into place."""
        for entry in full.iterdir():
            if _TOOL_FILES.fullmatch(entry.name):
                entry.unlink()
        os.chmod(full, 0o700)
        fsync_tree(full)
        if staged is not None:
            os.rename(staged, paths.root / RESTORE_BINLOG)
        os.rename(full, paths.data_dir)
        fsync_dir(paths.root)
        make_private_dir(paths.run_dir, user)

    def _extract_and_prepare(
        self, work: Path, user: EngineUser, spec: InstanceSpec, chain: Sequence[BinaryIO]
    ) -> Path:
        """Extract every stream into ``work/<n>``, check that they form one chain of
        ``spec.version``, prepare the full and apply the incrementals; return the full."""
        parts: list[Path] = []
        for number, stream in enumerate(chain, start=1):
            part = work / f"{number:04d}"
            make_private_dir(part, user)
            what = f"mbstream -x (backup {number} of {len(chain)})"
            stream_in(user, [str(self._mbstream), "-x", "-C", str(part)], stream, what=what)
            parts.append(part)
        _check_chain(parts, spec)
        tmp_dir = work / "tmp"
        make_private_dir(tmp_dir, user)
        prepare = [str(self._tool), "--no-defaults", "--prepare", f"--tmpdir={tmp_dir}"]
        full, *incrementals = parts
        run_as(user, [*prepare, f"--target-dir={full}"], what="mariadb-backup --prepare")
        for number, incremental in enumerate(incrementals, start=2):
            run_as(
                user,
                [*prepare, f"--target-dir={full}", f"--incremental-dir={incremental}"],
                what=f"mariadb-backup --prepare of incremental {number - 1}",
            )
        return full


# --- the backup login ---------------------------------------------------------------------


def _client_options(paths: InstancePaths, secret: str) -> str:
    """The tool's only option file: the instance's server settings plus the login."""
    return (
        f"!include {config_path(paths)}\n"
        "[client]\n"
        f"user = {INTERNAL_ADMIN}\n"
        f"password = {secret}\n"
        f"socket = {socket_path(paths)}\n"
    )


@contextmanager
def _password_login(paths: InstancePaths, secret: str) -> Iterator[None]:
    """Let ``root@localhost`` also log in with ``secret`` while the block runs."""
    with translate_errors("letting mariadb-backup log in"), connect(paths) as session:
        session.execute("SET SESSION sql_log_bin = 0")
        session.execute(
            _ALSO_PASSWORD, (INTERNAL_ADMIN, INTERNAL_ADMIN_HOST, q.password_hash(secret))
        )
    try:
        yield
    except BaseException:
        with suppress(CofferError):
            reset_admin_login(paths)
        raise
    reset_admin_login(paths)


# --- positions and chains -----------------------------------------------------------------


def _parent_lsn(parent: Mapping[str, str], spec: InstanceSpec) -> str:
    """The LSN an incremental on ``parent`` starts from, if ``parent`` can be one."""
    source = parent.get("instance_id")
    if source != spec.instance_id:
        raise EngineError(
            f"the parent backup was taken of instance {source!r}, not {spec.instance_id!r}; "
            "an incremental needs a parent of the same instance"
        )
    lsn = parent.get("to_lsn", "")
    if not _LSN.fullmatch(lsn):
        raise EngineError(f"the parent backup's positions hold no valid to_lsn (got {lsn!r})")
    return lsn


def _require_reached(paths: InstancePaths, lsn: str) -> None:
    """Raise ``EngineError`` if InnoDB's log has not reached ``lsn`` (a parent from some
    other history), before any backup runs."""
    with translate_errors("reading the InnoDB log position"), connect(paths) as session:
        ((_kind, _name, status),) = session.execute("SHOW ENGINE INNODB STATUS")
    found = _LOG_SEQUENCE_NUMBER.search(str(status))
    if found is None:
        raise EngineError("SHOW ENGINE INNODB STATUS reported no log sequence number")
    if int(lsn) > int(found[1]):
        raise _parent_ahead(lsn, "log sequence number", found[1])


def _parent_ahead(parent_lsn: str, what: str, current: str) -> EngineError:
    return EngineError(
        f"the parent backup ends at LSN {parent_lsn}, ahead of this instance's {what} "
        f"{current}: it is not from this instance's history; take a full backup"
    )


def _positions(lsn_dir: Path, spec: InstanceSpec) -> dict[str, str]:
    checkpoints = _key_values(lsn_dir / _CHECKPOINTS)
    info = _key_values(lsn_dir / _INFO)
    kind = checkpoints.get("backup_type", "")
    positions = {
        "instance_id": spec.instance_id,
        "backup_type": "incremental" if kind == "incremental" else "full",
        "server_version": info.get("server_version", ""),
    }
    for key in ("from_lsn", "to_lsn", "last_lsn"):
        value = checkpoints.get(key, "")
        if not _LSN.fullmatch(value):
            raise EngineError(f"mariadb-backup left no valid {key} in {_CHECKPOINTS}")
        positions[key] = value
    binlog = _BINLOG_POS.search(info.get("binlog_pos", ""))
    if binlog is not None:
        positions["binlog_file"] = binlog["file"]
        positions["binlog_position"] = binlog["position"]
        positions["gtid"] = binlog["gtid"] or ""
    return positions


def _check_chain(parts: Sequence[Path], spec: InstanceSpec) -> None:
    """Raise ``EngineError`` unless ``parts`` are a full of ``spec.version`` followed by
    incrementals that each start where the previous one ended."""
    previous_to: str | None = None
    for number, part in enumerate(parts, start=1):
        checkpoints = _key_values(part / _CHECKPOINTS)
        kind = checkpoints.get("backup_type")
        if number == 1:
            version = _key_values(part / _INFO).get("server_version", "")
            if not version.startswith(f"{spec.version}."):
                raise EngineError(
                    f"the backup is of MariaDB {version or 'unknown'}, not {spec.version}"
                )
            if kind != "full-backuped":
                raise EngineError(f"the first backup of the chain is {kind!r}, not a full one")
        elif kind != "incremental":
            raise EngineError(f"backup {number} of the chain is {kind!r}, not an incremental")
        elif checkpoints.get("from_lsn") != previous_to:
            raise EngineError(
                f"backup {number} of the chain starts at LSN {checkpoints.get('from_lsn')}, "
                f"but the one before it ends at {previous_to}: the chain is out of order"
            )
        previous_to = checkpoints.get("to_lsn")


def _key_values(path: Path) -> dict[str, str]:
    """``key = value`` lines of a small metadata file written by the tool (no symlinks)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            text = handle.read(_METADATA_LIMIT).decode("utf-8", errors="replace")
    except OSError as exc:
        raise EngineError(f"mariadb-backup metadata {path.name} is missing: {exc}") from None
    pairs = (line.partition("=") for line in text.splitlines())
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


# --- counting -----------------------------------------------------------------------------


def _tables(session: Session, excluded: Sequence[str]) -> list[tuple[str, str]]:
    return [
        (str(db), str(table))
        for db, table in session.execute(_TABLES_OF_USER_DATABASES, (tuple(excluded),))
    ]


def _row_count(session: Session, db: str, table: str) -> int:
    target = f"{q.quote_identifier(db)}.{q.quote_identifier(table)}"
    ((rows,),) = session.execute(f"SELECT COUNT(*) FROM {target}")
    return int(rows)


# --- tools ----------------------------------------------------------------------------------


def _fresh_dir(path: Path) -> None:
    """An empty root-owned 0700 ``path`` (whatever was there before is removed)."""
    if path.is_symlink():
        path.unlink()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
