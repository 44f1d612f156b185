"""PostgreSQL's WAL as a ``LogArchive``: what the agent ships for point-in-time recovery.

Files are WAL segments of the instance's current timeline, named as PostgreSQL names
them. Segments ``archive_command`` has copied into ``<root>/wal_archive`` are complete
(read from there: the archive copy never changes). The segment being written is listed
from ``pg_wal`` with its flushed prefix as ``ready`` (bytes below the flush position are
final), but only when every segment before it is archived: files are listed without
gaps, so the shipper's "everything before this position is shipped" holds. No segment
switch is forced: the shipped prefix of the current segment keeps the latest restorable
time about one shipping round behind, whatever the write rate.

``position`` is ``pg_current_wal_insert_lsn()``: every commit record inserted before the
call lies before it (a commit's timestamp is taken just before its record is inserted).
When that points just past the header of a page nothing was written on yet (after a
record ended on a page boundary, or after a WAL switch) it is moved back to the boundary,
and a segment's end is given as that segment's (``(name, segment size)``): the position
then needs only bytes already flushed, so an idle instance's position becomes shippable
without more writes. The current segment is listed once something is flushed into it
(before that its file may not exist).

Precision: a restore from the shipped WAL reaches a target time to the microsecond of
commit timestamps (see ``backup``'s "Point-in-time restore"); what can be restored ends
at the last shipped ``ready`` byte of the current segment, about one shipping round
behind the instance. The shipper should read a file's ``ready`` bytes promptly: a
segment read from ``pg_wal`` long after it was completed, archived and recycled by a
checkpoint holds other WAL (a restore refuses it: its page headers name other addresses).

Files start at the segment holding the oldest full backup's ``start_lsn`` (nothing older
serves a restore) or at the oldest segment still archived: backups prune the archive
(``backup._prune_archive``), so a segment pruned before it was shipped (the store was
unreachable for a whole backup interval) leaves a gap that restores across it report.
Archiving itself starts with the first full backup (``config.archive_command``).
"""

from __future__ import annotations

from collections.abc import Mapping

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths, LogFile, LogPosition
from coffer.engines.postgresql.backup import archived_wal_files, parse_lsn, segment_name
from coffer.engines.postgresql.connection import connect, translate_errors
from coffer.errors import EngineError

__all__ = ["PostgresLogArchive"]

_POSITIONS = """
SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text,
       substr(pg_walfile_name(pg_current_wal_flush_lsn()), 1, 8),
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
       pg_is_in_recovery(),
       current_setting('wal_block_size')::int
"""
#: MAXALIGNed sizes of a WAL page's header: the first page of a segment has the long one
_SHORT_PAGE_HEADER = 24
_LONG_PAGE_HEADER = 40


class _Now:
    """The instance's WAL positions at one moment."""

    def __init__(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        with translate_errors("reading WAL positions"), connect(paths, spec) as conn:
            row = conn.execute(_POSITIONS).fetchone()
        if row is None or row[4]:
            raise EngineError("the instance is recovering: its WAL is not archived yet")
        self.insert = parse_lsn(str(row[0]))
        self.flush = parse_lsn(str(row[1]))
        self.timeline = int(str(row[2]), 16)
        self.segment_bytes = int(row[3])
        self.block_bytes = int(row[5])

    def at(self, lsn: int) -> LogPosition:
        size = self.segment_bytes
        return LogPosition(segment_name(self.timeline, lsn // size, size), lsn % size)

    def committed_end(self) -> LogPosition:
        """The insert position, less the header of a page no record was put on yet
        (``pg_current_wal_insert_lsn()`` then points past it, though nothing written
        lies there until the next record), and a segment's end as that segment's: the
        position only needs bytes that are written and flushed without further writes."""
        lsn = self.insert
        if lsn % self.segment_bytes == _LONG_PAGE_HEADER:
            lsn -= _LONG_PAGE_HEADER
        elif lsn % self.block_bytes == _SHORT_PAGE_HEADER:
            lsn -= _SHORT_PAGE_HEADER
        if lsn > 0 and lsn % self.segment_bytes == 0:
            previous = self.at(lsn - 1)
            return LogPosition(previous.name, self.segment_bytes)
        return self.at(lsn)


class PostgresLogArchive:
    """The ``LogArchive`` of PostgreSQL instances (stateless; see the module notes)."""

    def position(self, paths: InstancePaths, spec: InstanceSpec) -> LogPosition:
        return _Now(paths, spec).committed_end()

    def files(
        self, paths: InstancePaths, spec: InstanceSpec, since: Mapping[str, str]
    ) -> list[LogFile]:
        try:
            start_lsn = parse_lsn(since["start_lsn"])
        except (KeyError, ValueError):
            raise EngineError("the oldest full backup has no WAL start position") from None
        now = _Now(paths, spec)
        size = now.segment_bytes
        first = now.at(start_lsn).name
        out: list[LogFile] = []
        expected: str | None = None
        for path in archived_wal_files(paths):
            name = path.name
            if len(name) != 24 or name < first or name[:8] != first[:8]:
                continue  # history and backup files, older segments, other timelines
            if expected is not None and name != expected:
                break  # a segment is missing: later ones would not join what is shipped
            out.append(LogFile(name=name, path=path, ready=size, complete=True))
            expected = _next_segment(name, size)
        current = now.at(now.flush)
        # nothing flushed into it yet: the file may not exist (it is made when first used)
        if current.name == (expected or first) and current.offset > 0:
            path = paths.data_dir / "pg_wal" / current.name
            out.append(LogFile(name=current.name, path=path, ready=current.offset, complete=False))
        return out


def _next_segment(name: str, segment_bytes: int) -> str:
    per_id = 0x100000000 // segment_bytes
    segno = int(name[8:16], 16) * per_id + int(name[16:24], 16)
    return segment_name(int(name[:8], 16), segno + 1, segment_bytes)
