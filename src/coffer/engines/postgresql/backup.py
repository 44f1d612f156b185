"""Physical backups of PostgreSQL: ``pg_basebackup`` for fulls, the WAL archive for
incrementals (the ``Backups`` seam).

Full backup
    ``pg_basebackup -D - -F tar -X fetch --checkpoint=fast`` over the instance's unix socket
    as the internal superuser (a ``local replication`` line in ``pg_hba.conf``), run as the
    instance's OS account; its stdout, one tar of the data directory with the WAL the backup
    needs and ``backup_manifest``, is copied to the sink in 1 MiB chunks. The backup is
    self-contained. Its positions come from ``pg_basebackup --verbose`` (start and end LSN,
    timeline; messages are untranslated under ``LC_ALL=C.UTF-8``) and the cluster's
    system identifier. Limits: one tablespace only (``-D -`` cannot carry more), and with
    ``-X fetch`` the WAL written during the backup must still be in ``pg_wal`` at its end
    (true unless a checkpoint recycles it: more than ``max_wal_size`` of WAL or a
    ``checkpoint_timeout`` during the backup); ``pg_basebackup`` fails clearly otherwise.

Incremental backup
    PostgreSQL 15 has no block-level incremental: an incremental is a tar (made by ``tar``
    as the OS account) of the archived WAL segments from the one holding the parent's
    ``lsn`` to the one ended by a ``pg_switch_wal()`` now, plus the timeline's history
    file. Archiving is continuous (``config.archive_command`` into ``<root>/wal_archive``);
    the backup waits until the switched segment is archived. The parent must be of this
    cluster (system identifier) and timeline, and every segment must still be archived,
    else ``EngineError`` asking for a full backup.

Positions (strings)
    ``timeline``; ``system_identifier``; ``start_lsn`` (a full's WAL start, an
    incremental's parent ``lsn``); ``lsn``, the chain's end: a restore replays everything
    before it (a full's end LSN; for an incremental the segment boundary after the switch);
    ``wal_file``, the last WAL segment the backup holds.

Restore
    The full's tar is extracted (``tar -x`` as the OS account, fed from the stream) into
    ``<root>/.data.partial`` (mode 0700), checked (``PG_VERSION``, ``pg_verifybackup``
    against its manifest), the incrementals' WAL into ``<root>/.restore_wal.partial``,
    checked file by file (names, sizes, WAL page headers: same cluster and timeline, one
    unbroken run of segments joining the full's). ``recovery.signal`` is written, all is
    synced, and both are renamed into place (``restore_wal`` first, the data directory
    last). ``configure`` then renders ``restore_command``; the first start replays all WAL
    and promotes to a new timeline; ``bootstrap`` cleans up (``lifecycle``). Any failure,
    including a stream raising mid-read, removes everything the restore made.

Point-in-time restore (a ``Recovery``)
    The shipped segments of the full's timeline are staged into the restore WAL from
    the full's last segment on (the shipped copy of that segment; one an incremental
    brought is kept), one after the other: each is checked (long page header: cluster,
    sizes; for a prefix shipped while the segment was written, every page's header
    names its own address) and a prefix is zero-padded to a segment (replay ends where
    its records end). After each, ``pg_waldump --rmgr=Transaction`` (``TZ=UTC``) over it
    and the one before looks for a transaction end (commit or abort, as PostgreSQL's
    recovery stop does) stamped later than the target. If one is found, staging stops
    and the target is written to ``restore_wal/recovery_target``, rendered as
    ``recovery_target_time`` (inclusive) with ``recovery_target_action = promote``;
    otherwise the whole staged WAL is replayed (PostgreSQL 13+ refuses to end a
    recovery whose target it never reached), which holds the same transactions.
    ``EngineError``, leaving nothing, for a target without a time zone; a target before
    the full backup's end (a transaction in the backup's own WAL ended after it:
    PostgreSQL could not stop there); a shipped copy of the full's last segment shorter
    than the backup's end, or none; a missing segment followed by shipped ones (a gap);
    shipped bytes that are not this cluster's WAL of that segment.

    Precision: microseconds of commit time. A commit's timestamp is taken just before
    its record is inserted; replay applies, in WAL order, every transaction up to the
    first one that ended after the target and none from there on. So every transaction
    whose commit is stamped at or before the target is applied, none stamped after it,
    except that of concurrent commits stamped within microseconds of each other the WAL
    order, not the stamp, decides on which side of the target each falls. Not detected:
    a target before the full backup began when no transaction ended during the backup
    (the restore then holds the backup's state: choose a backup that ended before the
    target), and a target beyond what was shipped (the restore holds what was).

Counts and checks
    ``counts``: rows of every permanent ordinary table (partitions included, partitioned
    parents not) outside system schemas, in every database that accepts connections and is
    not a template, as ``db.schema.table``, each database counted in one snapshot. Unlogged
    and temporary tables are left out: physical backups do not carry their rows.
    Precision: counts are taken right after the backup ends (for an incremental, after the
    switch), so they equal the restored instance's exactly when no writes happen between
    the backup's end and the counting (tests hold writes; under load they are close, not
    exact). ``check``: ``pg_amcheck --heapallindexed`` on every connectable database but
    ``template1`` (heap and TOAST pages and tuples, B-tree index structure, and that every
    heap tuple is in each B-tree index); it installs ``amcheck`` in ``pg_catalog`` of the
    databases it checks where missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import psycopg
from psycopg import sql

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import BackupOutcome, InstancePaths, Recovery
from coffer.engines.host import (
    CHUNK_BYTES,
    EngineUser,
    ToolResult,
    check_traversable,
    make_private_dir,
    run_tool,
    stream_in,
    stream_out,
    write_private_file,
)
from coffer.engines.postgresql.catalog import INTERNAL_SUPERUSER
from coffer.engines.postgresql.config import (
    ARCHIVE_ENABLED,
    RECOVERY_SIGNAL,
    RECOVERY_TARGET,
    restore_wal_dir,
    wal_archive_dir,
)
from coffer.engines.postgresql.connection import Connection, connect, translate_errors
from coffer.engines.postgresql.lifecycle import PREPARE_LOCK, PostgresLifecycle
from coffer.engines.templates import exclusive_lock, fsync_dir
from coffer.errors import EngineError

__all__ = [
    "PostgresBackups",
    "archived_wal_files",
    "format_lsn",
    "parse_lsn",
    "segment_name",
]

_STDERR_TAIL = 2000
#: stderr of ``pg_basebackup --verbose`` kept for its WAL positions (a few lines)
_BASEBACKUP_LOG_LIMIT = 1 << 20
#: tools log in over the private socket (trust): no password file is ever read
_PG_ENV = {"PGPASSFILE": "/dev/null"}
#: how long an incremental waits for the archiver to archive the switched segment
_ARCHIVE_WAIT_S = 120.0
_ARCHIVE_POLL_S = 0.05
#: pg_amcheck's exit status when it reports corruption (its report is on stdout)
_AMCHECK_FOUND_DAMAGE = 2

_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
_SEGMENT = re.compile(r"[0-9A-F]{24}")
_HISTORY = re.compile(r"[0-9A-F]{8}\.history")
_BACKUP_HISTORY = re.compile(r"[0-9A-F]{24}\.[0-9A-F]{8}\.backup")
_WAL_START = re.compile(r"write-ahead log start point: ([0-9A-F]+/[0-9A-F]+) on timeline (\d+)")
_WAL_END = re.compile(r"write-ahead log end point: ([0-9A-F]+/[0-9A-F]+)")
#: a transaction's end in ``pg_waldump --rmgr=Transaction`` output (run with TZ=UTC): the
#: record's LSN and its timestamp, e.g. ``lsn: 0/014F9ED8, prev 0/014F9E58, desc: COMMIT
#: 2026-11-26 03:05:58.754067 UTC; inval msgs: ...`` (``COMMIT_PREPARED 735: <time>`` for
#: a prepared transaction; pg_waldump always prints six fraction digits)
_XACT_END = re.compile(
    r"lsn: ([0-9A-F]+/[0-9A-F]+), prev [0-9A-F]+/[0-9A-F]+, desc: "
    r"(?:COMMIT|ABORT)(?:_PREPARED)?\b[^\n]*?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) UTC"
)
#: the part of pg_waldump's error that means "no valid record here": the end of the WAL
_END_OF_WAL = "error in WAL record"
#: XLogPageHeaderData without padding: magic, info, timeline, page address, rem_len
_PAGE_HEADER = struct.Struct("=HHIQI")
_START_TIMELINE = re.compile(r"^START TIMELINE: (\d+)$", re.MULTILINE)
#: XLogLongPageHeaderData: magic, info, timeline, page address, rem_len, (pad),
#: system identifier, segment size, block size
_LONG_PAGE_HEADER = struct.Struct("=HHIQI4xQII")

_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence = 'p'
  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
ORDER BY 1, 2
"""


class PostgresBackups:
    """The PostgreSQL ``Backups``. Keeps no state; safe to use from several threads for
    different instances."""

    def __init__(self, lifecycle: PostgresLifecycle) -> None:
        self._lifecycle = lifecycle

    def backup(
        self,
        paths: InstancePaths,
        spec: InstanceSpec,
        sink: BinaryIO,
        parent: Mapping[str, str] | None = None,
    ) -> BackupOutcome:
        """A full backup (``parent`` None) or the archived WAL since ``parent`` to ``sink``.

        Blocks for the whole backup; writes keep being served. ``EngineError`` names the
        failing tool or the reason an incremental is impossible; errors of ``sink``
        propagate unchanged.
        """
        user = EngineUser.lookup(paths.os_user)
        bin_dir = self._lifecycle.installed_bin_dir(spec.version)
        if parent is None:
            # from now on, completed segments are kept for the next incremental
            archive = wal_archive_dir(paths.root)
            make_private_dir(archive, user)
            write_private_file(archive / ARCHIVE_ENABLED, "", user)
            positions = _full_backup(paths, spec, sink, user=user, bin_dir=bin_dir)
        else:
            positions = _incremental_backup(paths, spec, sink, user=user, parent=parent)
        # what an incremental on an earlier backup would need, whatever becomes of this one
        _prune_archive(paths, spec, parent["lsn"] if parent else positions["start_lsn"])
        return BackupOutcome(positions=positions, counts=self.counts(paths, spec))

    def restore(
        self,
        paths: InstancePaths,
        spec: InstanceSpec,
        chain: Sequence[BinaryIO],
        recovery: Recovery | None = None,
    ) -> None:
        """Build ``paths.data_dir`` (absent) from a full backup and its incrementals, with
        the restored WAL set up for replay at the next start. All or nothing."""
        if not chain:
            raise EngineError("a restore needs at least the full backup")
        user = EngineUser.lookup(paths.os_user)
        bin_dir = self._lifecycle.installed_bin_dir(spec.version)
        paths.root.mkdir(parents=True, exist_ok=True)
        check_traversable(paths.root, user)
        with exclusive_lock(paths.root / PREPARE_LOCK):
            if paths.data_dir.exists():
                raise EngineError(
                    f"{str(paths.data_dir)!r} already exists: a backup is restored only "
                    "into a new instance"
                )
            _Restore(paths, spec, user=user, bin_dir=bin_dir).run(chain, recovery)
        make_private_dir(paths.run_dir, user)
        make_private_dir(wal_archive_dir(paths.root), user)

    def counts(self, paths: InstancePaths, spec: InstanceSpec) -> dict[str, int]:
        """Rows per permanent table, ``{"db.schema.table": n}`` (see the module notes)."""
        with translate_errors("listing databases"), connect(paths, spec) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database"
                " WHERE NOT datistemplate AND datallowconn ORDER BY datname"
            ).fetchall()
        counts: dict[str, int] = {}
        for (dbname,) in rows:
            with (
                translate_errors(f"counting rows in database {dbname!r}"),
                connect(paths, spec, dbname=dbname) as conn,
            ):
                counts.update(_count_rows(conn, dbname))
        return counts

    def check(self, paths: InstancePaths, spec: InstanceSpec) -> str:
        """``pg_amcheck`` over every connectable database but ``template1``; a summary
        line, or ``EngineError`` quoting the damage it reports."""
        user = EngineUser.lookup(paths.os_user)
        amcheck = self._lifecycle.installed_bin_dir(spec.version) / "pg_amcheck"
        argv = [
            str(amcheck),
            *_connection_args(paths, spec),
            "--all",
            "--exclude-database=template1",
            "--install-missing",
            "--heapallindexed",
            "--verbose",
        ]
        result = _run_tool(user, argv)
        if result.returncode == _AMCHECK_FOUND_DAMAGE:
            report = " ".join(result.stdout.split())[:_STDERR_TAIL]
            raise EngineError(f"pg_amcheck found damage: {report}")
        if result.returncode != 0:
            raise EngineError(
                f"pg_amcheck failed (exit {result.returncode}): {_tail(result.stderr)}"
            )
        log = result.stderr
        tables = log.count("checking heap table")
        indexes = log.count("checking btree index")
        databases = log.count("including database")
        return (
            f"pg_amcheck: no corruption in {tables} heap tables and {indexes} B-tree indexes "
            f"of {databases} databases"
        )


def archived_wal_files(paths: InstancePaths) -> list[Path]:
    """Every completed file in the instance's WAL archive, sorted by name: WAL segments,
    timeline history files (``*.history``) and backup history files (``*.backup``).

    A listed file is complete and never changes (``archive_command`` renames it into
    place and never overwrites), so a caller may ship it and later delete it; an
    incremental needing a deleted segment then fails asking for a full backup.
    """
    directory = wal_archive_dir(paths.root)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    kept = [
        name
        for name in names
        if _SEGMENT.fullmatch(name) or _HISTORY.fullmatch(name) or _BACKUP_HISTORY.fullmatch(name)
    ]
    return [directory / name for name in sorted(kept)]


def _prune_archive(paths: InstancePaths, spec: InstanceSpec, before_lsn: str) -> None:
    """Delete the archived WAL before the segment holding ``before_lsn``: an incremental's
    parent's end (no incremental on that parent needs older WAL), or a full backup's start
    (an incremental on it starts later). The archive on the volume thus holds the WAL
    since about the latest backup; an incremental on an older backup fails asking for a
    full backup. Pruning at the parent, not at this backup's end, keeps what a retry
    needs if this backup is never stored."""
    with translate_errors("reading the WAL segment size"), connect(paths, spec) as conn:
        size = _ClusterIdentity.read(conn).segment_bytes
    keep_from = parse_lsn(before_lsn) // size
    for path in archived_wal_files(paths):
        name = path.name
        if _HISTORY.fullmatch(name):
            continue  # timeline histories are tiny and a restore across timelines needs them
        if _segment_number(name[:24], size) < keep_from:
            path.unlink(missing_ok=True)


def parse_lsn(text: str) -> int:
    """``"0/3000100"`` → 50331904; ``ValueError`` for anything else."""
    match = _LSN.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a WAL location")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value: int) -> str:
    """PostgreSQL's spelling of a WAL location: ``"0/3000100"``."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def segment_name(timeline: int, segno: int, segment_bytes: int) -> str:
    """The file name of WAL segment ``segno`` (an LSN // ``segment_bytes``) on ``timeline``."""
    per_id = 0x100000000 // segment_bytes
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def _segment_number(name: str, segment_bytes: int) -> int:
    return int(name[8:16], 16) * (0x100000000 // segment_bytes) + int(name[16:24], 16)


# --- full backups ---------------------------------------------------------------------


def _full_backup(
    paths: InstancePaths, spec: InstanceSpec, sink: BinaryIO, *, user: EngineUser, bin_dir: Path
) -> dict[str, str]:
    argv = [
        str(bin_dir / "pg_basebackup"),
        *_connection_args(paths, spec),
        "--pgdata=-",
        "--format=tar",
        "--wal-method=fetch",
        "--checkpoint=fast",
        "--label=coffer",
        "--verbose",
    ]
    log = stream_out(
        user,
        argv,
        sink,
        what="pg_basebackup",
        extra_env=_PG_ENV,
        keep_stderr=_BASEBACKUP_LOG_LIMIT,
    )
    start, end = _WAL_START.search(log), _WAL_END.search(log)
    if start is None or end is None:
        raise EngineError(f"pg_basebackup did not report its WAL positions: {_tail(log)}")
    with translate_errors("reading the cluster's identity"), connect(paths, spec) as conn:
        identity = _ClusterIdentity.read(conn)
    end_segment = parse_lsn(end.group(1)) // identity.segment_bytes
    timeline = int(start.group(2))
    return {
        "timeline": str(timeline),
        "system_identifier": identity.system_identifier,
        "start_lsn": start.group(1),
        "lsn": end.group(1),
        "wal_file": segment_name(timeline, end_segment, identity.segment_bytes),
    }


# --- incremental backups --------------------------------------------------------------


@dataclass(frozen=True)
class _ClusterIdentity:
    system_identifier: str
    segment_bytes: int

    @classmethod
    def read(cls, conn: Connection) -> _ClusterIdentity:
        row = conn.execute(
            "SELECT system_identifier::text,"
            " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')"
            " FROM pg_control_system()"
        ).fetchone()
        if row is None:
            raise EngineError("PostgreSQL did not report its system identifier")
        return cls(system_identifier=str(row[0]), segment_bytes=int(row[1]))


@dataclass(frozen=True)
class _Parent:
    timeline: int
    system_identifier: str
    lsn: int
    wal_file: str

    @classmethod
    def parse(cls, positions: Mapping[str, str]) -> _Parent:
        """The parent's positions, or ``EngineError`` if they are not a PostgreSQL backup's."""
        try:
            parent = cls(
                timeline=int(positions["timeline"]),
                system_identifier=str(positions["system_identifier"]),
                lsn=parse_lsn(positions["lsn"]),
                wal_file=str(positions["wal_file"]),
            )
        except (KeyError, ValueError, TypeError):
            shown = {key: positions[key] for key in sorted(positions)}
            raise EngineError(
                f"the parent backup's positions {shown} are not those of a PostgreSQL backup; "
                "take a full backup"
            ) from None
        if parent.timeline < 1 or not parent.system_identifier.isdigit():
            raise EngineError("the parent backup's positions are malformed; take a full backup")
        return parent


def _incremental_backup(
    paths: InstancePaths,
    spec: InstanceSpec,
    sink: BinaryIO,
    *,
    user: EngineUser,
    parent: Mapping[str, str],
) -> dict[str, str]:
    base = _Parent.parse(parent)
    with translate_errors("switching WAL segment"), connect(paths, spec) as conn:
        identity = _ClusterIdentity.read(conn)
        _check_parent(conn, base, identity)
        switched, timeline = _switch_wal(conn)
    if timeline != base.timeline:
        raise EngineError(
            f"the parent backup is of timeline {base.timeline}, this instance is on timeline "
            f"{timeline}; take a full backup"
        )
    size = identity.segment_bytes
    end = -(-switched // size) * size  # the boundary the switch padded to
    first, last = base.lsn // size, end // size - 1
    names = [segment_name(timeline, segno, size) for segno in range(first, last + 1)]
    archive = wal_archive_dir(paths.root)
    if names:
        _wait_archived(paths, spec, archive / names[-1])
    missing = [name for name in names if not (archive / name).is_file()]
    if missing:
        raise EngineError(
            f"WAL segment {missing[0]} needed since the parent backup is no longer in the WAL "
            f"archive ({len(missing)} of {len(names)} missing); take a full backup"
        )
    history = f"{timeline:08X}.history"
    members = [*names, history] if (archive / history).is_file() else names
    argv = ["tar", "--create", "--file=-", f"--directory={archive}", "--files-from=/dev/null"]
    stream_out(user, [*argv, "--", *members], sink, what="tar of archived WAL", extra_env=_PG_ENV)
    return {
        "timeline": str(timeline),
        "system_identifier": identity.system_identifier,
        "start_lsn": format_lsn(base.lsn),
        "lsn": format_lsn(end),
        "wal_file": names[-1] if names else base.wal_file,
    }


def _check_parent(conn: Connection, parent: _Parent, identity: _ClusterIdentity) -> None:
    if parent.system_identifier != identity.system_identifier:
        raise EngineError(
            f"the parent backup is of another database cluster (system identifier "
            f"{parent.system_identifier}, this one {identity.system_identifier}); "
            "take a full backup"
        )
    row = conn.execute(
        "SELECT pg_is_in_recovery(), current_setting('archive_mode'),"
        " CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END"
    ).fetchone()
    if row is None or row[0]:
        raise EngineError("the instance is recovering; an incremental backup needs a primary")
    if row[1] != "on":
        raise EngineError(
            "WAL archiving is off on this instance (restart it so that Coffer's "
            "configuration takes effect); take a full backup"
        )
    if parse_lsn(str(row[2])) < parent.lsn:
        raise EngineError(
            f"the parent backup ends at {format_lsn(parent.lsn)}, beyond this instance's WAL "
            f"({row[2]}); take a full backup"
        )


def _switch_wal(conn: Connection) -> tuple[int, int]:
    """``pg_switch_wal()`` and the current timeline (from the insert segment's name)."""
    row = conn.execute(
        "SELECT pg_switch_wal()::text, substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
    ).fetchone()
    if row is None:
        raise EngineError("pg_switch_wal() returned nothing")
    return parse_lsn(str(row[0])), int(str(row[1]), 16)


def _wait_archived(paths: InstancePaths, spec: InstanceSpec, segment: Path) -> None:
    deadline = time.monotonic() + _ARCHIVE_WAIT_S
    while not segment.is_file():
        if time.monotonic() > deadline:
            with translate_errors("reading archiver status"), connect(paths, spec) as conn:
                row = conn.execute(
                    "SELECT failed_count, last_failed_wal FROM pg_stat_archiver"
                ).fetchone()
            failed = f"; {row[0]} failures, last for {row[1]}" if row and row[0] else ""
            raise EngineError(
                f"WAL segment {segment.name} was not archived within {_ARCHIVE_WAIT_S:.0f} s"
                f"{failed}; see {paths.log_file}"
            )
        time.sleep(_ARCHIVE_POLL_S)


# --- restores -------------------------------------------------------------------------


@dataclass(frozen=True)
class _WalHeader:
    magic: int
    timeline: int
    page_address: int
    system_identifier: int
    segment_bytes: int
    block_bytes: int

    @classmethod
    def read(cls, path: Path) -> _WalHeader:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            raw = os.read(fd, _LONG_PAGE_HEADER.size)
        finally:
            os.close(fd)
        header = _parse_long_header(raw)
        if header is None:
            raise EngineError(f"WAL file {path.name} of the backup is truncated")
        return header


@dataclass(frozen=True)
class _Base:
    """The extracted full backup: its last WAL segment's header and its WAL range (from
    ``backup_manifest``): replay must reach ``end_lsn`` before the data is consistent."""

    header: _WalHeader
    start_lsn: int
    end_lsn: int


class _Restore:
    """One restore: partial directories beside the final ones, removed on any failure."""

    def __init__(
        self, paths: InstancePaths, spec: InstanceSpec, *, user: EngineUser, bin_dir: Path
    ) -> None:
        self.paths, self.spec, self.user, self.bin_dir = paths, spec, user, bin_dir
        self.data_partial = paths.root / f".{paths.data_dir.name}.partial"
        self.wal_dir = restore_wal_dir(paths.root)
        self.wal_partial = paths.root / f".{self.wal_dir.name}.partial"

    def run(self, chain: Sequence[BinaryIO], recovery: Recovery | None) -> None:
        self._remove_leftovers()
        try:
            make_private_dir(self.data_partial, self.user)
            _extract(self.user, self.data_partial, chain[0])
            base = self._check_base()
            make_private_dir(self.wal_partial, self.user)
            for stream in chain[1:]:
                _extract(self.user, self.wal_partial, stream)
            self._check_wal(base.header)
            stop_before = self._stage_logs(base, recovery) if recovery else None
            segments = self._check_wal(base.header)
            if stop_before:
                write_private_file(self.wal_partial / RECOVERY_TARGET, stop_before, self.user)
            write_private_file(self.data_partial / RECOVERY_SIGNAL, "", self.user)
            self._sync(segments)
            os.rename(self.wal_partial, self.wal_dir)
            os.rename(self.data_partial, self.paths.data_dir)
            fsync_dir(self.paths.root)
        except BaseException:
            self._remove_leftovers()
            raise

    def _remove_leftovers(self) -> None:
        shutil.rmtree(self.data_partial, ignore_errors=True)
        shutil.rmtree(self.wal_partial, ignore_errors=True)
        if not self.paths.data_dir.exists():
            shutil.rmtree(self.wal_dir, ignore_errors=True)

    def _stage_logs(self, base: _Base, recovery: Recovery) -> str | None:
        """Copy the shipped WAL from the base backup's last segment on into the restore's
        WAL (segments an incremental brought are kept), one segment at a time, until one
        holds a transaction that ended after the target; a shipped prefix of a segment is
        padded with zeros to the segment size (the replay ends where its records end).

        Returns the ``recovery_target_time`` to render, or None when no transaction in
        the WAL ended after the target: then the whole WAL is replayed (PostgreSQL
        refuses to end a recovery whose target it never reached). ``EngineError`` for a
        target without a time zone or inside the backup, shipped WAL that does not join
        the backup, has a gap, or is not this cluster's WAL.
        """
        header = base.header
        size = header.segment_bytes
        target = _utc(recovery.target)
        self._refuse_target_inside_backup(base, target)
        first = header.page_address // size
        shipped = {
            _segment_number(name, size): name
            for name in recovery.logs.names()
            if _SEGMENT.fullmatch(name) and int(name[:8], 16) == header.timeline
        }
        segno, previous = first, first
        while True:
            path = self.wal_partial / segment_name(header.timeline, segno, size)
            if not path.exists():
                if segno not in shipped:
                    break
                with recovery.logs.open(shipped[segno]) as stream:
                    length = _write_segment(path, stream, header, self.user)
                if segno == first and length < base.end_lsn - first * size:
                    raise EngineError(
                        f"the shipped WAL segment {path.name} holds {length} bytes, but the "
                        f"backup ends at {format_lsn(base.end_lsn)} in it: the WAL was not "
                        "shipped that far yet; wait for the shipping to catch up"
                    )
            ended = self._first_end_after(
                self.wal_partial, header.timeline, previous * size, (segno + 1) * size, target
            )
            if ended is not None:
                if ended < base.end_lsn:
                    raise _target_inside_backup(target, base)
                return target.isoformat(sep=" ")
            previous, segno = segno, segno + 1
        later = sorted(number for number in shipped if number > segno)
        if segno == first or later:
            raise EngineError(
                "the shipped WAL has a gap: segment "
                f"{segment_name(header.timeline, segno, size)} "
                f"{'the backup ends in ' if segno == first else ''}was not shipped"
                f"{'' if not later else f' (later ones were, from {shipped[later[0]]})'}; "
                "restore to a target before it or from a later backup"
            )
        return None

    def _refuse_target_inside_backup(self, base: _Base, target: datetime) -> None:
        """``EngineError`` if a transaction of the full backup's own WAL (up to its end)
        ended after ``target``: the data already holds changes past the target."""
        size = base.header.segment_bytes
        start = base.start_lsn // size * size
        wal = self.data_partial / "pg_wal"
        ended = self._first_end_after(wal, base.header.timeline, start, base.end_lsn, target)
        if ended is not None and ended < base.end_lsn:
            raise _target_inside_backup(target, base)

    def _first_end_after(
        self, wal_dir: Path, timeline: int, start: int, end: int, target: datetime
    ) -> int | None:
        """The LSN of the first transaction end (commit or abort) later than ``target``
        among the records of ``timeline`` in ``wal_dir`` from LSN ``start`` (a segment
        boundary: a record that began in the segment before is skipped) to ``end``, or
        None. The WAL may end earlier, where its records do (a shipped prefix)."""
        argv = [
            str(self.bin_dir / "pg_waldump"),
            f"--path={wal_dir}",
            f"--timeline={timeline}",
            "--rmgr=Transaction",
            f"--start={format_lsn(start)}",
            f"--end={format_lsn(end)}",
        ]
        result = run_tool(self.user, argv, extra_env={**_PG_ENV, "TZ": "UTC"})
        if result.returncode != 0 and _END_OF_WAL not in result.stderr:
            raise EngineError(f"pg_waldump could not read the WAL: {_tail(result.stderr)}")
        for match in _XACT_END.finditer(result.stdout):
            ended = datetime.strptime(match.group(2), "%Y-%m-%d %H:%M:%S.%f")
            if ended.replace(tzinfo=UTC) > target:
                return parse_lsn(match.group(1))
        return None

    def _check_base(self) -> _Base:
        """The extracted full backup is this version's and intact; the header of its
        last WAL segment (identity, timeline, sizes, end segment) and its WAL range."""
        data = self.data_partial
        try:
            version = _read_regular_file(data / "PG_VERSION").decode("ascii").strip()
            label = _read_regular_file(data / "backup_label").decode("utf-8")
            wal_dir_is_real = stat.S_ISDIR(os.lstat(data / "pg_wal").st_mode)
        except (OSError, UnicodeDecodeError):
            wal_dir_is_real, version, label = False, "", ""
        if not wal_dir_is_real or not version.isdigit():
            raise EngineError("the first backup of the chain is not a PostgreSQL full backup")
        if version != self.spec.version:
            raise EngineError(
                f"the backup is of PostgreSQL {version}; it cannot be restored into "
                f"PostgreSQL {self.spec.version}"
            )
        verify = _run_tool(self.user, [str(self.bin_dir / "pg_verifybackup"), "--quiet", str(data)])
        if verify.returncode != 0:
            raise EngineError(
                f"pg_verifybackup rejected the full backup: {_tail(verify.stderr + verify.stdout)}"
            )
        start_lsn, end_lsn = _manifest_wal_range(data / "backup_manifest")
        (data / "backup_manifest").unlink()
        timeline = _START_TIMELINE.search(label)
        segments = sorted(
            entry.name for entry in os.scandir(data / "pg_wal") if _SEGMENT.fullmatch(entry.name)
        )
        if timeline is None or not segments:
            raise EngineError("the full backup holds no backup label timeline or WAL")
        header = _WalHeader.read(data / "pg_wal" / segments[-1])
        if header.timeline != int(timeline.group(1)):
            raise EngineError("the full backup's WAL is not on its backup label's timeline")
        return _Base(header=header, start_lsn=start_lsn, end_lsn=end_lsn)

    def _check_wal(self, base: _WalHeader) -> list[Path]:
        """The incrementals' files: only segments and history files, the segments one
        unbroken run of the base's cluster and timeline starting at most one past it."""
        size = base.segment_bytes
        segments: dict[int, Path] = {}
        for entry in os.scandir(self.wal_partial):
            path = Path(entry.path)
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                raise EngineError(
                    f"an incremental backup holds {entry.name!r}, which is not a WAL file"
                )
            if _HISTORY.fullmatch(entry.name):
                continue
            if not _SEGMENT.fullmatch(entry.name) or info.st_size != size:
                raise EngineError(
                    f"an incremental backup holds {entry.name!r}, which is not a WAL file"
                )
            header = _WalHeader.read(path)
            segno = _segment_number(entry.name, size)
            if (
                header.system_identifier != base.system_identifier
                or header.timeline != base.timeline
                or int(entry.name[:8], 16) != base.timeline
                or header.page_address != segno * size
                or header.magic != base.magic
            ):
                raise EngineError(
                    f"WAL segment {entry.name} of an incremental backup belongs to another "
                    "database cluster or timeline than the full backup"
                )
            segments[segno] = path
        if segments:
            numbers = sorted(segments)
            joins = numbers[0] <= base.page_address // size + 1
            gaps = [n for n in range(numbers[0], numbers[-1] + 1) if n not in segments]
            if not joins or gaps:
                missing = gaps[0] if gaps else base.page_address // size + 1
                raise EngineError(
                    "the backup chain has a gap: WAL segment "
                    f"{segment_name(base.timeline, missing, size)} is in none of its backups"
                )
        return list(segments.values())

    def _sync(self, segments: list[Path]) -> None:
        initdb = [str(self.bin_dir / "initdb"), "--sync-only", "-D", str(self.data_partial)]
        synced = _run_tool(self.user, initdb)
        if synced.returncode != 0:
            raise EngineError(f"syncing the restored data failed: {_tail(synced.stderr)}")
        for path in segments:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(self.wal_partial)


def _write_segment(path: Path, stream: BinaryIO, base: _WalHeader, user: EngineUser) -> int:
    """The shipped bytes of segment ``path.name`` from ``stream`` into the new file
    ``path``, zero-padded to a segment, owned by ``user``; returns how many were shipped.

    ``EngineError`` unless they are this cluster's WAL of that segment: the first page's
    long header (system identifier, sizes), and for a prefix shipped while the segment
    was written every page it holds (each was written, so its header names its own
    address; a complete segment's pages after a WAL switch are not written).
    """
    size = base.segment_bytes
    segment_start = _segment_number(path.name, size) * size
    shipped = bytearray()
    while chunk := stream.read(CHUNK_BYTES):
        shipped += chunk
        if len(shipped) > size:
            raise EngineError(f"the shipped WAL file {path.name} is larger than a segment")
    length = len(shipped)
    header = _parse_long_header(bytes(shipped[: _LONG_PAGE_HEADER.size]))
    pages = range(0, length if length < size else 1, base.block_bytes)
    if (
        header is None
        or (header.system_identifier, header.segment_bytes, header.block_bytes)
        != (base.system_identifier, base.segment_bytes, base.block_bytes)
        or not all(_page_is(shipped, at, base.magic, segment_start + at) for at in pages)
    ):
        raise EngineError(
            f"the shipped file {path.name} is not WAL of the backup's database cluster "
            "(a page header does not match); the shipped WAL is damaged"
        )
    with open(path, "xb", opener=lambda name, flags: os.open(name, flags, 0o600)) as out:
        out.write(shipped)
        out.truncate(size)
        os.fchown(out.fileno(), user.uid, user.gid)
    return length


def _manifest_wal_range(path: Path) -> tuple[int, int]:
    """The WAL a full backup needs, from its ``backup_manifest`` (checked by
    ``pg_verifybackup``): the first range's ``Start-LSN`` and the last one's ``End-LSN``."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        with os.fdopen(fd, "rb") as manifest:
            ranges = json.load(manifest)["WAL-Ranges"]
        return parse_lsn(ranges[0]["Start-LSN"]), parse_lsn(ranges[-1]["End-LSN"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        raise EngineError("the full backup's manifest names no WAL range") from None


def _parse_long_header(raw: bytes) -> _WalHeader | None:
    if len(raw) < _LONG_PAGE_HEADER.size:
        return None
    magic, _info, tli, address, _rem, sysid, seg_bytes, blck = _LONG_PAGE_HEADER.unpack(raw)
    return _WalHeader(magic, tli, address, sysid, seg_bytes, blck)


def _page_is(data: bytearray, offset: int, magic: int, address: int) -> bool:
    """Whether the WAL page at ``offset`` of ``data`` has ``magic`` and ``address`` (a
    page cut before its header ends cannot be checked: the replay ends there anyway)."""
    if len(data) - offset < _PAGE_HEADER.size:
        return True
    page_magic, _info, _tli, page_address, _rem = _PAGE_HEADER.unpack_from(data, offset)
    return bool(page_magic == magic and page_address == address)


def _utc(target: datetime) -> datetime:
    if target.tzinfo is None or target.utcoffset() is None:
        raise EngineError(f"the recovery target {target.isoformat()} has no time zone")
    return target.astimezone(UTC)


def _target_inside_backup(target: datetime, base: _Base) -> EngineError:
    return EngineError(
        f"the recovery target {target.isoformat()} lies before the full backup ended (at "
        f"WAL {format_lsn(base.end_lsn)}; a transaction in it ended later): restore from an "
        "older full backup"
    )


def _read_regular_file(path: Path, limit: int = 1 << 16) -> bytes:
    """The start of ``path`` if it is a regular file (a symlink is refused: restores read
    files of the tenant's backup as root)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        return os.read(fd, limit)
    finally:
        os.close(fd)


def _extract(user: EngineUser, directory: Path, stream: BinaryIO) -> None:
    """``tar -x`` of ``stream`` into ``directory`` as ``user``; a stream's own error
    propagates unchanged."""
    argv = ["tar", "--extract", "--file=-", f"--directory={directory}", "--no-same-owner"]
    stream_in(user, argv, stream, what="extracting the backup (tar)", extra_env=_PG_ENV)


# --- counting -------------------------------------------------------------------------


def _count_rows(conn: Connection, dbname: str) -> dict[str, int]:
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    counts: dict[str, int] = {}
    with conn.transaction():
        for schema, table in conn.execute(_TABLES).fetchall():
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            row = conn.execute(query).fetchone()
            counts[f"{dbname}.{schema}.{table}"] = int(row[0]) if row else 0
    return counts


# --- running tools as the instance's OS account ---------------------------------------


def _connection_args(paths: InstancePaths, spec: InstanceSpec) -> list[str]:
    return [
        f"--host={paths.run_dir}",
        f"--port={spec.port}",
        f"--username={INTERNAL_SUPERUSER}",
        "--no-password",
    ]


def _run_tool(user: EngineUser, argv: Sequence[str]) -> ToolResult:
    """Run ``argv`` to completion as ``user``; its exit status and output."""
    return run_tool(user, argv, extra_env=_PG_ENV)


def _tail(text: str) -> str:
    return text.strip()[-_STDERR_TAIL:]
