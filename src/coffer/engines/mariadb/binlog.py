"""MariaDB's binary log for point-in-time recovery: shipped out as it is written
(``MariaDBLogArchive``), staged by a restore (``stage_logs``) and rolled forward at the
restored instance's first start (``roll_forward``, from ``lifecycle.bootstrap``).

Archive
    Binary logging is on for every instance (``config``: ``<data dir>/mariadb-bin.NNNNNN``,
    ``ROW`` format; a file closes at ``max_binlog_size``, see ``config.binlog_file_bytes``).
    ``position`` is ``SHOW MASTER STATUS``: binlog group commit writes a transaction's
    events before its commit returns, so everything committed before the call lies
    before it. ``files`` lists, oldest first, the files from the oldest full backup's
    ``binlog_file`` on: ``SHOW MASTER STATUS`` is read first, then ``SHOW BINARY LOGS``;
    files before the status file are closed (``ready`` = their size on disk), the status
    file is ``ready`` up to the status position, and files rotated in between the two
    queries wait for the next call. One byte of a file does change at its close: the
    format description event's "in use" flag is cleared. A copy shipped while the file
    was open keeps the flag set; ``mariadb-binlog`` only remarks on it (the event's
    checksum leaves the flag out).

Restore staging
    ``stage_logs`` fills ``<root>/.restore_binlog.partial`` (the restore renames it to
    ``<root>/restore_binlog`` together with the data directory, all or nothing) with the
    shipped files the roll forward needs: from the file the backup chain ends in (read
    from the prepared backup's ``xtrabackup_binlog_info``, ``chain_end``; an incremental's
    prepare copies its own over the full's) on, consecutively, up to but excluding the
    first file whose format description event (its first event, stamped when the file
    was opened) is later than the target. A plan (``plan.json``: start file, start
    position, stop datetime, files) goes beside them.

Roll forward
    ``mariadb-binlog --start-position=<pos> --stop-datetime=<S> <files...>`` (run as the
    instance's OS account, which need only read the staged files; ``TZ=UTC``) piped into
    the ``mariadb`` client as ``root@localhost`` over the instance's unix socket (run as
    OS root for ``unix_socket``; no password anywhere), both with a minimal environment.
    Before the pipe starts, a mark (``apply-begun``) is written and fsynced: applying twice
    would duplicate changes, so a ``bootstrap`` that finds the mark refuses
    (``EngineError``: restore again). After a clean apply the directory is renamed aside
    and removed. The roll forward runs before ``bootstrap`` cleans the account table, so
    nothing the log replays (a tenant's ``root@%`` can change accounts) outlives the
    reset of the agent's login; Coffer's own changes to ``root@localhost`` never reach
    the binary log (``sql_log_bin = 0``).

Precision of a target T
    Binary log events carry whole-second UTC timestamps: the time the statement began,
    for a transaction the time its ``COMMIT`` began (its GTID event's stamp, which its
    other events do not exceed). A restore to T applies the log in commit order up to the
    first event stamped later than floor(T): ``--stop-datetime`` is floor(T) + 1 s in UTC
    (``mariadb-binlog`` stops at the first event stamped at or after it, and a
    transaction cut there is rolled back). So every transaction whose commit began at or
    before floor(T) is applied, none whose commit began after; a long statement that
    began before T and committed after it counts as before.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, cast

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths, LogFile, LogPosition, LogSource, Recovery
from coffer.engines.host import CHUNK_BYTES, EngineUser, stream_out
from coffer.engines.mariadb.catalog import INTERNAL_ADMIN
from coffer.engines.mariadb.config import socket_path
from coffer.engines.mariadb.connection import Session, connect, translate_errors
from coffer.engines.templates import fsync_dir
from coffer.errors import EngineError

__all__ = [
    "DEFAULT_BINLOG_TOOL",
    "DEFAULT_CLIENT",
    "RESTORE_BINLOG",
    "RESTORE_BINLOG_PARTIAL",
    "MariaDBLogArchive",
    "chain_end",
    "discard_staged_logs",
    "roll_forward",
    "roll_forward_begun",
    "stage_logs",
    "stop_datetime",
]

DEFAULT_BINLOG_TOOL = Path("/usr/bin/mariadb-binlog")
DEFAULT_CLIENT = Path("/usr/bin/mariadb")
#: The staged logs of a point-in-time restore, applied by the first ``bootstrap``.
RESTORE_BINLOG = "restore_binlog"
#: Where a restore builds ``RESTORE_BINLOG`` before renaming it in.
RESTORE_BINLOG_PARTIAL = ".restore_binlog.partial"
#: A successfully applied ``RESTORE_BINLOG``, renamed aside before it is removed.
_APPLIED = ".restore_binlog.applied"
_PLAN = "plan.json"
_BEGUN = "apply-begun"
_BINLOG_INFO = "xtrabackup_binlog_info"
_NAME = re.compile(r"(?P<base>[A-Za-z0-9_-]{1,64})\.(?P<number>[0-9]{6,10})")
_STOP_FORMAT = "%Y-%m-%d %H:%M:%S"
_STOP_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_MAGIC = b"\xfebin"
#: magic + the common event header (timestamp, type, server id, size, end, flags)
_HEAD = struct.Struct("<4sIBIIIH")
_FORMAT_DESCRIPTION_EVENT = 15
_FIRST_EVENT_AT = 4
_METADATA_LIMIT = 64 * 1024
_CLIENT_ERROR_TAIL = 2000
_CLIENT_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC"}


class MariaDBLogArchive:
    """The ``LogArchive`` of MariaDB instances: stateless (see the module notes)."""

    def position(self, paths: InstancePaths, spec: InstanceSpec) -> LogPosition:
        """``SHOW MASTER STATUS``: the end of the binary log's committed part now."""
        with translate_errors("reading the binary log position"), connect(paths) as session:
            name, offset = _master_status(session)
        return LogPosition(name, offset)

    def files(
        self, paths: InstancePaths, spec: InstanceSpec, since: Mapping[str, str]
    ) -> list[LogFile]:
        """The binary log files from ``since["binlog_file"]`` to the one being written,
        oldest first, with absolute paths in the data directory. ``EngineError`` when
        ``since`` holds no binary log file name or the server none."""
        first = _parse_name(since.get("binlog_file", ""), "the oldest full backup's binlog_file")
        with translate_errors("listing the binary logs"), connect(paths) as session:
            current_name, current_offset = _master_status(session)
            listed = [str(row[0]) for row in session.execute("SHOW BINARY LOGS")]
        current = _parse_name(current_name, "SHOW MASTER STATUS")
        out: list[LogFile] = []
        for text in listed:
            name = _parse_name(text, "SHOW BINARY LOGS")
            if name.base != first.base or name.number < first.number:
                continue
            path = paths.data_dir / text
            if name.number == current.number:
                out.append(LogFile(name=text, path=path, ready=current_offset, complete=False))
                break
            if name.number > current.number:
                break  # rotated after the status was read: the next call lists it
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                continue  # purged since it was listed
            out.append(LogFile(name=text, path=path, ready=size, complete=True))
        return out


# --- restore: what the roll forward needs ----------------------------------------------------


def chain_end(prepared: Path) -> tuple[str, int]:
    """The binary log file and position a prepared backup chain ends at, from its
    ``xtrabackup_binlog_info`` (``EngineError`` if it has none or it is malformed)."""
    try:
        fd = os.open(prepared / _BINLOG_INFO, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            text = handle.read(_METADATA_LIMIT).decode("utf-8", errors="replace")
    except OSError:
        raise EngineError(
            f"the backup holds no binary log position ({_BINLOG_INFO}): it cannot be rolled "
            "forward to a point in time"
        ) from None
    fields = text.split()
    if len(fields) < 2 or not _NAME.fullmatch(fields[0]) or not fields[1].isdigit():
        raise EngineError(f"the backup's {_BINLOG_INFO} is malformed: {text[:200]!r}")
    return fields[0], int(fields[1])


def stage_logs(
    directory: Path,
    *,
    recovery: Recovery,
    start: tuple[str, int],
    user: EngineUser,
) -> list[str]:
    """Copy the shipped binary logs a roll forward from ``start`` to ``recovery.target``
    needs into ``directory`` (an existing empty 0700 directory owned by ``user``), with
    the plan; return the names staged. Files and plan are fsynced, owned by ``user``.

    ``EngineError`` if the target has no time zone or lies before the start file begins,
    if the start file or one after it (before the stop) was not shipped, or a shipped
    file is not a binary log; errors of ``recovery.logs`` propagate. The caller removes
    ``directory`` on failure.
    """
    stop = stop_datetime(recovery.target)
    start_name, start_position = start
    first = _parse_name(start_name, "the backup's binary log position")
    staged: list[str] = []
    previous: _Name | None = None
    for name in _shipped_from(recovery.logs, first):
        if previous is not None and name.number != previous.number + 1:
            raise EngineError(
                f"the binary log {first.with_number(previous.number + 1)} was not shipped (the "
                f"shipped log jumps from {previous.text} to {name.text}); restore to a target "
                "before it"
            )
        previous = name
        with recovery.logs.open(name.text) as stream:
            head = _read_head(stream, name.text)
            opened = datetime.fromtimestamp(_HEAD.unpack(head)[1], UTC)
            if opened >= stop:
                if not staged:
                    raise EngineError(
                        f"the target {recovery.target.isoformat()} lies before the binary log "
                        f"{name.text} the backup ends in was begun ({opened.isoformat()}); "
                        "choose a later target or an older backup"
                    )
                break
            size = _copy(stream, head, directory / name.text, user)
        if not staged and size < start_position:
            raise EngineError(
                f"the shipped binary log {name.text} holds {size} bytes, but the backup ends "
                f"at position {start_position} in it: it was not shipped that far; restore "
                "without a target time or wait for the shipping to catch up"
            )
        staged.append(name.text)
    plan = {
        "start_file": start_name,
        "start_position": start_position,
        "stop_datetime": stop.strftime(_STOP_FORMAT),
        "target": recovery.target.isoformat(),
        "files": staged,
    }
    _write_durably(directory / _PLAN, json.dumps(plan, indent=1).encode(), user)
    fsync_dir(directory)
    return staged


def stop_datetime(target: datetime) -> datetime:
    """floor(``target``) + 1 s in UTC: ``mariadb-binlog`` stops at the first event stamped
    at or after it. ``EngineError`` for a target without a time zone."""
    if target.tzinfo is None or target.utcoffset() is None:
        raise EngineError(f"the recovery target {target.isoformat()} has no time zone")
    return target.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)


def discard_staged_logs(paths: InstancePaths) -> None:
    """Remove staged logs of an earlier restore (applied, partial or never applied): call
    only while no data directory exists or the roll forward is finished. Idempotent."""
    for name in (RESTORE_BINLOG, RESTORE_BINLOG_PARTIAL, _APPLIED):
        _remove(paths.root / name)


def _shipped_from(logs: LogSource, first: _Name) -> list[_Name]:
    """The shipped names of ``first``'s series from ``first`` on, in log order;
    ``EngineError`` unless ``first`` is among them."""
    names = sorted(
        parsed
        for text in logs.names()
        if (parsed := _match_name(text)) is not None
        and parsed.base == first.base
        and parsed.number >= first.number
    )
    if not names or names[0].number != first.number:
        raise EngineError(
            f"the binary log {first.text} the backup ends in was not shipped; the backup "
            "cannot be rolled forward: restore without a target time or from a later backup"
        )
    return names


def _read_head(stream: BinaryIO, name: str) -> bytes:
    head = b""
    while len(head) < _HEAD.size:
        chunk = stream.read(_HEAD.size - len(head))
        if not chunk:
            break
        head += chunk
    if len(head) < _HEAD.size or not head.startswith(_MAGIC):
        raise EngineError(f"the shipped file {name} is not a binary log (no binlog magic)")
    if _HEAD.unpack(head)[2] != _FORMAT_DESCRIPTION_EVENT:
        raise EngineError(f"the shipped binary log {name} does not begin with its format event")
    return head


def _copy(stream: BinaryIO, head: bytes, target: Path, user: EngineUser) -> int:
    """Write ``head`` and the rest of ``stream`` to new file ``target``; its size."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchown(out.fileno(), user.uid, user.gid)
        out.write(head)
        size = len(head)
        while chunk := stream.read(CHUNK_BYTES):
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size


# --- the roll forward ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    start_position: int
    stop_datetime: str
    files: list[Path]


def roll_forward(
    paths: InstancePaths,
    *,
    binlog_tool: Path = DEFAULT_BINLOG_TOOL,
    client: Path = DEFAULT_CLIENT,
) -> bool:
    """Apply ``<root>/restore_binlog`` to the running instance if it exists; return
    whether it did. Blocks for the apply; not re-entrant (bootstrap runs one at a time).

    ``EngineError`` if a mark shows an earlier apply began (it cannot be resumed: changes
    would be applied twice), if the plan is unreadable, or if ``mariadb-binlog`` or the
    client fail (with the tail of their errors; the mark then stays).
    """
    _remove(paths.root / _APPLIED)
    directory = paths.root / RESTORE_BINLOG
    if directory.is_symlink() or not directory.is_dir():
        return False
    mark = directory / _BEGUN
    if os.path.lexists(mark):
        raise EngineError(
            "an interrupted point-in-time roll-forward cannot be resumed; restore again"
        )
    plan = _read_plan(directory)
    user = EngineUser.lookup(paths.os_user)
    _write_durably(mark, b"begun\n", None)
    fsync_dir(directory)
    _apply(paths, user, plan, binlog_tool=binlog_tool, client=client)
    os.rename(directory, paths.root / _APPLIED)
    fsync_dir(paths.root)
    _remove(paths.root / _APPLIED)
    return True


def roll_forward_begun(paths: InstancePaths) -> bool:
    """Whether ``<root>/restore_binlog`` is there with an apply begun (``roll_forward``
    would refuse it)."""
    directory = paths.root / RESTORE_BINLOG
    if directory.is_symlink() or not directory.is_dir():
        return False
    return os.path.lexists(directory / _BEGUN)


def _read_plan(directory: Path) -> _Plan:
    try:
        fd = os.open(directory / _PLAN, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            raw = json.loads(handle.read(_METADATA_LIMIT))
        start_position = raw["start_position"]
        stop = raw["stop_datetime"]
        names = raw["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"the point-in-time restore plan is unreadable: {exc}") from None
    valid = (
        isinstance(start_position, int)
        and start_position >= _FIRST_EVENT_AT
        and isinstance(stop, str)
        and _STOP_TEXT.fullmatch(stop)
        and isinstance(names, list)
        and names
        and all(isinstance(name, str) and _NAME.fullmatch(name) for name in names)
    )
    if not valid:
        raise EngineError("the point-in-time restore plan is malformed; restore again")
    files = [directory / name for name in names]
    for path in files:
        if path.is_symlink() or not path.is_file():
            raise EngineError(f"the staged binary log {path.name} is missing; restore again")
    return _Plan(start_position=start_position, stop_datetime=stop, files=files)


def _apply(
    paths: InstancePaths, user: EngineUser, plan: _Plan, *, binlog_tool: Path, client: Path
) -> None:
    """``mariadb-binlog ... | mariadb``: the tool as ``user``, the client as OS root."""
    decode = [
        str(binlog_tool),
        "--no-defaults",
        f"--start-position={plan.start_position}",
        f"--stop-datetime={plan.stop_datetime}",
        *(str(path) for path in plan.files),
    ]
    apply = [
        str(client),
        "--no-defaults",
        "--batch",
        "--binary-mode",
        "--skip-print-query-on-error",  # statements may carry data: the error alone
        "--max-allowed-packet=1G",
        f"--socket={socket_path(paths)}",
        f"--user={INTERNAL_ADMIN}",
    ]
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                apply,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=_CLIENT_ENV,
                cwd="/",
            )
        except OSError as exc:
            raise EngineError(f"cannot run {str(client)!r}: {exc.strerror}") from None
        assert process.stdin is not None
        try:
            with process.stdin:
                stream_out(
                    user,
                    decode,
                    cast(BinaryIO, process.stdin),
                    what="mariadb-binlog (decoding the staged binary logs)",
                    extra_env={"TZ": "UTC"},
                )
        except BrokenPipeError:
            pass  # the client stopped reading: its exit status says why
        except BaseException:
            process.kill()
            process.wait()
            raise
        returncode = process.wait()
        if returncode != 0:
            errors.seek(0)
            tail = errors.read().decode("utf-8", errors="replace").strip()
            raise EngineError(
                f"applying the binary logs with the mariadb client failed (exit {returncode}): "
                f"{tail[-_CLIENT_ERROR_TAIL:]}"
            )


# --- helpers --------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class _Name:
    """A binary log file name: ``<base>.<number>`` (numbers zero-padded to 6 digits)."""

    base: str
    number: int
    text: str

    def with_number(self, number: int) -> str:
        return f"{self.base}.{number:06d}"


def _match_name(text: str) -> _Name | None:
    found = _NAME.fullmatch(text)
    if found is None:
        return None
    return _Name(found["base"], int(found["number"]), text)


def _parse_name(text: str, where: str) -> _Name:
    name = _match_name(text)
    if name is None:
        raise EngineError(f"{where} holds no valid binary log file name (got {text[:80]!r})")
    return name


def _master_status(session: Session) -> tuple[str, int]:
    rows = session.execute("SHOW MASTER STATUS")
    if not rows:
        raise EngineError("the binary log is off on this instance (SHOW MASTER STATUS is empty)")
    name, offset = str(rows[0][0]), int(rows[0][1])
    _parse_name(name, "SHOW MASTER STATUS")
    return name, offset


def _write_durably(path: Path, data: bytes, user: EngineUser | None) -> None:
    """Create ``path`` (absent) holding ``data``, fsynced; owned by ``user`` if given."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        if user is not None:
            os.fchown(fd, user.uid, user.gid)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Remove ``path`` and all in it (a symlink is removed, not followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)
