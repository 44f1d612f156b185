"""Redis backups: an RDB snapshot and the ACL users in one tar stream (the ``Backups`` seam).

Backups are full only (``RedisCatalog.incremental_backups`` is False): an RDB file is a
whole dataset, and Redis keeps no change log an incremental could start from.

Backup
    ``BGSAVE`` through the agent's admin connection, then ``dump.rdb`` is read while it
    streams to ``sink``: the snapshot is Redis's own persistence file (written aside and
    renamed into place by Redis), so nothing is staged. ``redis-cli --rdb`` would stream
    the same bytes over a replication link, but the moment of its fork cannot be tied
    to the counts, users and positions recorded with it; ``BGSAVE`` forks inside the
    command, so one pipelined round trip ``CLIENT PAUSE <5 s> WRITE`` · ``BGSAVE`` ·
    ``INFO`` · ``ACL LIST`` · ``CLIENT UNPAUSE`` reads keyspace, replication offset and
    users at the fork itself. Writes (and expiry) wait for the fork to finish, usually
    milliseconds; reads go on. The pause lapses by itself should the agent vanish.

    Other saves: a save in progress (a save point, a tenant root's ``BGSAVE``, an AOF
    rewrite) makes ``BGSAVE`` refuse, so the backup first waits until no child process
    runs. ``rdb_saves`` (counted at each fork) identifies our snapshot: if it moves while
    we wait, or before ``dump.rdb`` is opened, a later save may have replaced the file,
    and the attempt is dropped before any byte reaches ``sink`` (five attempts, then
    ``EngineError``). A failed ``BGSAVE`` (``rdb_last_bgsave_status:err``, e.g. a full
    volume) raises ``EngineError`` with the end of the server's log. Note that Redis then
    refuses writes until a save succeeds (``stop-writes-on-bgsave-error``), as after a
    failed save point.

    The stream is an uncompressed tar (GNU format: one 512-byte header a member, any
    size), written straight to ``sink``, the RDB in 1 MiB blocks:

    * ``coffer-redis-backup.json`` — ``{"format": "coffer-redis-backup", "version": 1,
      "redis_version": ...}``; always the first member.
    * ``users.acl`` — the ``ACL LIST`` lines of every user but ``default`` and Coffer's
      own (admin, replication): tenant users and ``root`` with their SHA-256 password hashes (never
      clear text) and rules.
    * ``dump.rdb`` — the snapshot.

    ``positions``: ``redis_version``, ``master_replid`` and ``master_repl_offset`` at
    the fork (shown in the manifest; no incremental ever starts from them).

Restore
    ``RedisLifecycle.prepare_from`` builds the data directory aside: the snapshot goes in
    as the base of a new multi-part AOF (``appendonlydir/appendonly.aof.1.base.rdb`` and
    a manifest naming it), because with ``appendonly yes`` Redis 7.0 loads only the AOF
    and would start empty beside a lone ``dump.rdb``. On start Redis loads the base,
    adds its incremental AOF file and keeps RDB + AOF persistence as for any instance.
    The ACL file holds the backup's users plus the *new* instance's admin user (its own
    password) and the disabled ``default`` user. Any failure, including a stream raising
    ``IntegrityError``, removes the half-made directory and leaves no data directory,
    admin password or run directory. The stream is read exactly, without read-ahead,
    and to its end (only zero padding may follow the archive): the caller's stream sees
    every byte it authenticates, and trailing data is refused.

Counts
    ``{"db<n>": keys without a TTL}`` for every logical database holding any
    (``keys - expires`` of ``INFO keyspace``). Keys with a TTL are left out: they may
    expire between the backup and a verification, so counting them would not be
    deterministic. Taken at the fork with writes paused, so exactly the snapshot's;
    a restored instance reports the same until it is written to.

Check
    The restored dataset loaded (``INFO persistence``: ``loading:0``, the number of keys
    the last load read), persistence is healthy (AOF on, last AOF write and last
    ``BGSAVE`` ok), and ``redis-check-rdb`` — run as the instance's OS account — passes
    on the RDB that is the base of the AOF (the restored snapshot, until an AOF rewrite
    replaces it with a newer one). Any damage raises ``EngineError`` with the tool's
    output tail.
"""

from __future__ import annotations

import json
import os
import stat
import tarfile
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

import redis

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import BackupOutcome, InstancePaths, Recovery
from coffer.engines.host import CHUNK_BYTES, EngineUser, run_tool, write_all
from coffer.engines.redis.acl import parse_user_line
from coffer.engines.redis.catalog import DEFAULT_USER, is_internal_user
from coffer.engines.redis.config import (
    AOF_DIR,
    AOF_FILE,
    aof_dir,
    aof_manifest_path,
    rdb_path,
)
from coffer.engines.redis.connection import (
    Client,
    connect,
    describe,
    info_fields,
    parse_info,
    raw_info_replies,
    translate_errors,
)
from coffer.engines.redis.lifecycle import RedisLifecycle
from coffer.errors import EngineError, NotImplementedByDatastore

__all__ = ["FORMAT", "RedisBackups"]

FORMAT = "coffer-redis-backup"
_FORMAT_VERSION = 1
_FORMAT_MEMBER = f"{FORMAT}.json"
_USERS_MEMBER = "users.acl"
_RDB_MEMBER = "dump.rdb"
_MEMBERS = (_FORMAT_MEMBER, _USERS_MEMBER, _RDB_MEMBER)
_MAX_SMALL_MEMBER = 64 * 1024 * 1024
_BASE_FILE = f"{AOF_FILE}.1.base.rdb"
_MANIFEST_FILE = f"{AOF_FILE}.manifest"

_PAUSE_MS = 5000
_ATTEMPTS = 5
_POLL_S = 0.05
_CONNECTION_TIMEOUT_S = 60.0
_OUTPUT_TAIL = 2000
_LOG_TAIL = 600
_CHILD_FIELDS = ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "module_fork_in_progress")
_BUSY_REPLIES = ("already in progress", "child process is active")
DEFAULT_CHECK_RDB = Path("/usr/bin/redis-check-rdb")


@dataclass(frozen=True)
class _Snapshot:
    """What was read at the fork of our ``BGSAVE``."""

    info: dict[str, str]
    users: str
    saves: str


class _Replaced(Exception):
    """Another save started after ours: ``dump.rdb`` may no longer be our snapshot."""


class RedisBackups:
    """The Redis ``Backups``: stateless, every call opens its own admin connection.

    ``save_timeout_s`` bounds the wait for other saves and for our ``BGSAVE``.
    """

    def __init__(
        self,
        lifecycle: RedisLifecycle,
        *,
        check_rdb: Path = DEFAULT_CHECK_RDB,
        save_timeout_s: float = 6 * 3600.0,
    ) -> None:
        self._lifecycle = lifecycle
        self._check_rdb = check_rdb
        self._save_timeout_s = save_timeout_s

    def backup(
        self,
        paths: InstancePaths,
        spec: InstanceSpec,
        sink: BinaryIO,
        parent: Mapping[str, str] | None = None,
    ) -> BackupOutcome:
        """Stream a tar of the format member, the users and a fresh RDB snapshot to
        ``sink``; ``NotImplementedByDatastore`` for an incremental (``parent``), with
        nothing written. Blocks for the length of the ``BGSAVE`` and the copy."""
        if parent is not None:
            raise NotImplementedByDatastore(
                "Redis backups are full only: an RDB snapshot has no incremental form"
            )
        deadline = time.monotonic() + self._save_timeout_s
        with (
            translate_errors("backing up Redis"),
            connect(paths, timeout_s=_CONNECTION_TIMEOUT_S) as client,
        ):
            raw_info_replies(client)
            snapshot, rdb = _own_snapshot(client, paths, deadline)
        with rdb:
            _write_archive(sink, snapshot, rdb)
        return BackupOutcome(
            positions=_positions(snapshot.info), counts=_counts(snapshot.info), counts_exact=True
        )

    def restore(
        self,
        paths: InstancePaths,
        spec: InstanceSpec,
        chain: Sequence[BinaryIO],
        recovery: Recovery | None = None,
    ) -> None:
        """Lay down ``paths.data_dir`` (absent) from a one-stream chain: the snapshot as
        the AOF base, the backup's users in the ACL file. ``EngineError`` for a chain of
        other length, a stream that is no Coffer Redis backup, or an existing data
        directory; a stream's own exception (``IntegrityError``) propagates. On failure
        nothing is left (see the module docstring)."""
        if recovery is not None:
            raise EngineError("Redis has no change log: it restores only to a backup's moment")
        if len(chain) != 1:
            raise EngineError(
                f"a Redis restore takes exactly one (full) backup stream, got {len(chain)}: "
                "Redis backups have no incrementals"
            )
        stream = chain[0]
        self._lifecycle.prepare_from(paths, spec, lambda partial: _unpack(stream, partial))

    def counts(self, paths: InstancePaths, spec: InstanceSpec) -> dict[str, int]:
        """Keys without a TTL per logical database of the running instance."""
        with translate_errors("counting keys"), connect(paths) as client:
            raw_info_replies(client)
            return _counts(info_fields(client, "keyspace"))

    def check(self, paths: InstancePaths, spec: InstanceSpec) -> str:
        """Load and persistence status, then ``redis-check-rdb`` on the AOF base RDB."""
        with translate_errors("checking Redis"), connect(paths) as client:
            raw_info_replies(client)
            info = info_fields(client, "persistence")
        _check_persistence(info)
        base = _aof_base(paths)
        keys_read = _check_rdb_file(self._check_rdb, EngineUser.lookup(paths.os_user), base)
        return (
            f"Redis loaded {info.get('rdb_last_load_keys_loaded', '?')} keys; "
            f"redis-check-rdb {base.name}: RDB looks OK ({keys_read})"
        )


# backup ------------------------------------------------------------------------------


def _own_snapshot(
    client: Client, paths: InstancePaths, deadline: float
) -> tuple[_Snapshot, IO[bytes]]:
    """Our ``BGSAVE``'s snapshot and ``dump.rdb`` opened on it."""
    for _ in range(_ATTEMPTS):
        _wait_for_no_child(client, deadline)
        snapshot = _fork_snapshot(client)
        if snapshot is None:
            continue  # another child started meanwhile
        try:
            _wait_for_save(client, paths, snapshot.saves, deadline)
        except _Replaced:
            continue
        rdb = _open_rdb(paths)
        try:
            still_ours = info_fields(client, "persistence").get("rdb_saves") == snapshot.saves
        except BaseException:
            rdb.close()
            raise
        if still_ours:
            return snapshot, rdb
        rdb.close()
    raise EngineError(
        f"backing up Redis: other saves kept replacing {_RDB_MEMBER} while the backup's "
        f"own snapshot was taken ({_ATTEMPTS} attempts); try again later"
    )


def _fork_snapshot(client: Client) -> _Snapshot | None:
    """One round trip: pause writes, ``BGSAVE``, read what the snapshot holds, unpause.
    None if another child process made ``BGSAVE`` refuse."""
    pipe = client.pipeline(transaction=False)
    for command in (
        ("CLIENT", "PAUSE", str(_PAUSE_MS), "WRITE"),
        ("BGSAVE",),
        ("INFO", "server", "persistence", "replication", "keyspace"),
        ("ACL", "LIST"),
        ("CLIENT", "UNPAUSE"),
    ):
        pipe.execute_command(*command)  # type: ignore[no-untyped-call]
    pause, bgsave, info_text, acl, unpause = pipe.execute(raise_on_error=False)
    for reply in (pause, info_text, acl, unpause):
        if isinstance(reply, Exception):
            raise reply
    if isinstance(bgsave, Exception):
        if isinstance(bgsave, redis.ResponseError) and any(
            busy in str(bgsave) for busy in _BUSY_REPLIES
        ):
            return None
        raise EngineError(f"backing up Redis: BGSAVE refused: {describe(bgsave)}")
    info = parse_info(str(info_text))
    if "rdb_saves" not in info:
        raise EngineError("backing up Redis: INFO shows no rdb_saves (Redis 7.0 or later needed)")
    return _Snapshot(info=info, users=_tenant_users(acl), saves=info["rdb_saves"])


def _wait_for_no_child(client: Client, deadline: float) -> None:
    while True:
        info = info_fields(client, "persistence")
        if all(info.get(field) == "0" for field in _CHILD_FIELDS):
            return
        _sleep_until(deadline, "another save or AOF rewrite to finish")


def _wait_for_save(client: Client, paths: InstancePaths, saves: str, deadline: float) -> None:
    """Wait for the ``BGSAVE`` counted as ``saves``; ``_Replaced`` if another started."""
    while True:
        info = info_fields(client, "persistence")
        if info.get("rdb_saves") != saves:
            raise _Replaced
        if info.get("rdb_bgsave_in_progress") == "0":
            break
        _sleep_until(deadline, "BGSAVE to finish")
    if info.get("rdb_last_bgsave_status") != "ok":
        raise EngineError(
            f"backing up Redis: BGSAVE failed (rdb_last_bgsave_status:"
            f"{info.get('rdb_last_bgsave_status')}); server log: {_log_tail(paths)}"
        )


def _sleep_until(deadline: float, what: str) -> None:
    if time.monotonic() >= deadline:
        raise EngineError(f"backing up Redis: timed out waiting for {what}")
    time.sleep(_POLL_S)


def _open_rdb(paths: InstancePaths) -> IO[bytes]:
    """``dump.rdb`` opened for reading (a regular file, no symlink followed)."""
    path = rdb_path(paths)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise EngineError(f"backing up Redis: cannot open {str(path)!r}: {exc.strerror}") from None
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise EngineError(f"backing up Redis: {str(path)!r} is not a regular file")
    return handle


def _write_archive(sink: BinaryIO, snapshot: _Snapshot, rdb: IO[bytes]) -> None:
    """The tar stream, written straight to ``sink`` (the RDB in 1 MiB blocks). A failing
    read of the RDB raises ``EngineError``; whatever ``sink`` raises propagates
    unchanged (it is the store's to report)."""
    header = {
        "format": FORMAT,
        "version": _FORMAT_VERSION,
        "redis_version": snapshot.info.get("redis_version", ""),
    }
    mtime = int(time.time())
    for name, data in (
        (_FORMAT_MEMBER, json.dumps(header).encode()),
        (_USERS_MEMBER, snapshot.users.encode("utf-8")),
    ):
        _write_member(sink, _member(name, len(data), mtime), BytesIO(data))
    size = os.fstat(rdb.fileno()).st_size
    _write_member(sink, _member(_RDB_MEMBER, size, mtime), _RdbReader(rdb, size))
    write_all(sink, bytes(2 * tarfile.BLOCKSIZE))  # end of archive


def _write_member(sink: BinaryIO, member: tarfile.TarInfo, content: _Readable) -> None:
    """One regular file: its header, ``member.size`` bytes of ``content``, zero padding
    to a whole block."""
    write_all(sink, member.tobuf(format=tarfile.GNU_FORMAT))
    left = member.size
    while left > 0:
        chunk = content.read(min(CHUNK_BYTES, left))
        left -= len(chunk)
        write_all(sink, chunk)
    write_all(sink, bytes(-member.size % tarfile.BLOCKSIZE))


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _RdbReader:
    """``rdb`` read for the archive: ``EngineError`` for a failed or short read."""

    def __init__(self, rdb: IO[bytes], size: int) -> None:
        self._rdb = rdb
        self._left = size

    def read(self, size: int = -1, /) -> bytes:
        try:
            data = self._rdb.read(size)
        except OSError as exc:
            raise EngineError(f"backing up Redis: reading {_RDB_MEMBER} failed: {exc}") from None
        self._left -= len(data)
        if not data and self._left > 0:
            raise EngineError(f"backing up Redis: {_RDB_MEMBER} ended {self._left} bytes early")
        return data


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size = size
    member.mode = 0o600
    member.mtime = mtime
    return member


def _tenant_users(acl: Any) -> str:
    """``ACL LIST`` lines of every user but ``default`` and Coffer's own (the admin and
    replication users: a restored instance gets its own)."""
    lines = []
    for line in acl:
        parsed = parse_user_line(str(line))
        if parsed is not None and _kept(parsed[0]):
            lines.append(f"{line}\n")
    return "".join(lines)


def _positions(info: Mapping[str, str]) -> dict[str, str]:
    return {
        name: info[name]
        for name in ("redis_version", "master_replid", "master_repl_offset")
        if name in info
    }


# restore -----------------------------------------------------------------------------


def _unpack(stream: BinaryIO, partial: Path) -> str:
    """Fill ``partial`` from the backup in ``stream``; return its users. Reads the stream
    exactly to its end (no read-ahead), so trailing data is noticed."""
    found: dict[str, str] = {}
    while True:
        header = _read_exact(stream, tarfile.BLOCKSIZE)
        if not header.strip(b"\0"):
            break  # the end-of-archive block
        member = _parse_header(header)
        _check_member(member, found)
        if member.name == _RDB_MEMBER:
            _lay_down_aof(stream, member.size, partial)
            found[member.name] = ""
        else:
            found[member.name] = _small_member(member, stream)
        _read_exact(stream, -member.size % tarfile.BLOCKSIZE)
    missing = [name for name in _MEMBERS if name not in found]
    if missing:
        raise EngineError(f"the backup is incomplete: it lacks {', '.join(missing)}")
    _drain(stream)
    return _restored_users(found[_USERS_MEMBER])


def _parse_header(block: bytes) -> tarfile.TarInfo:
    try:
        return tarfile.TarInfo.frombuf(block, "utf-8", "strict")
    except (tarfile.HeaderError, UnicodeDecodeError) as exc:
        raise EngineError(f"the backup is not a readable Coffer Redis backup: {exc}") from None


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    """Exactly ``size`` bytes of ``stream``; ``EngineError`` if it ends before."""
    parts: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(min(left, CHUNK_BYTES))
        if not chunk:
            raise EngineError("the backup ends early: it is truncated")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _check_member(member: tarfile.TarInfo, found: Mapping[str, str]) -> None:
    if not found and member.name != _FORMAT_MEMBER:
        raise EngineError(
            f"the backup is not a Coffer Redis backup (it starts with {member.name!r}, "
            f"not {_FORMAT_MEMBER!r})"
        )
    if member.name not in _MEMBERS or member.name in found or not member.isreg():
        raise EngineError(f"the backup holds an unexpected member {member.name!r}")


def _small_member(member: tarfile.TarInfo, stream: BinaryIO) -> str:
    if member.size > _MAX_SMALL_MEMBER:
        raise EngineError(f"backup member {member.name!r} is too large ({member.size} bytes)")
    try:
        text = _read_exact(stream, member.size).decode("utf-8")
    except UnicodeDecodeError:
        raise EngineError(f"backup member {member.name!r} is not UTF-8 text") from None
    if member.name == _FORMAT_MEMBER:
        _check_header(text)
    return text


def _check_header(text: str) -> None:
    try:
        header = json.loads(text)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise EngineError("the backup is not a Coffer Redis backup (unknown format member)")
    if header.get("version") != _FORMAT_VERSION:
        raise EngineError(
            f"the backup's format version {header.get('version')!r} is not supported "
            f"(this host reads version {_FORMAT_VERSION})"
        )


def _lay_down_aof(stream: BinaryIO, size: int, partial: Path) -> None:
    """The next ``size`` bytes of ``stream`` (the snapshot) as the base of a multi-part
    AOF in ``partial``, with its manifest."""
    directory = partial / AOF_DIR
    directory.mkdir(mode=0o700)
    with _new_file(directory / _BASE_FILE) as base:
        left = size
        while left > 0:
            chunk = stream.read(min(left, CHUNK_BYTES))
            if not chunk:
                raise EngineError("the backup ends early: its RDB snapshot is truncated")
            base.write(chunk)
            left -= len(chunk)
    with _new_file(directory / _MANIFEST_FILE) as manifest:
        manifest.write(f"file {_BASE_FILE} seq 1 type b\n".encode())


def _new_file(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    return os.fdopen(fd, "wb")


def _drain(stream: BinaryIO) -> None:
    """Read ``stream`` to its end; only the archive's zero padding may remain."""
    while chunk := stream.read(CHUNK_BYTES):
        if chunk.strip(b"\0"):
            raise EngineError("the backup has unexpected data after its end")


def _restored_users(text: str) -> str:
    """The backup's user lines, checked; ``default`` and Coffer's own users are dropped
    (the new instance has its own)."""
    kept = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parsed = parse_user_line(line)
        if parsed is None:
            raise EngineError("the backup's users.acl holds a line that is not an ACL user")
        if _kept(parsed[0]):
            kept.append(f"{line}\n")
    return "".join(kept)


def _kept(user: str) -> bool:
    """Whether a backup carries ``user``: tenant users and ``root`` only."""
    return user != DEFAULT_USER and not is_internal_user(user)


# counts and check --------------------------------------------------------------------


def _counts(info: Mapping[str, str]) -> dict[str, int]:
    """``db<n>`` -> keys without a TTL, from ``INFO keyspace`` fields."""
    counts: dict[str, int] = {}
    for name, value in info.items():
        if not (name.startswith("db") and name[2:].isdigit()):
            continue
        fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
        persistent = int(fields.get("keys", "0")) - int(fields.get("expires", "0"))
        if persistent > 0:
            counts[name] = persistent
    return dict(sorted(counts.items(), key=lambda item: int(item[0][2:])))


def _check_persistence(info: Mapping[str, str]) -> None:
    expected = {
        "loading": "0",
        "async_loading": "0",
        "aof_enabled": "1",
        "aof_last_write_status": "ok",
        "rdb_last_bgsave_status": "ok",
    }
    wrong = [f"{name}:{info.get(name)}" for name, ok in expected.items() if info.get(name) != ok]
    if wrong:
        raise EngineError(f"Redis persistence is not healthy: {', '.join(wrong)}")


def _aof_base(paths: InstancePaths) -> Path:
    """The base file the AOF manifest names; ``EngineError`` unless it is an RDB."""
    manifest = aof_manifest_path(paths)
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError(f"cannot read the AOF manifest {str(manifest)!r}: {exc}") from None
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and fields[0] == "file" and fields[4:] == ["type", "b"]:
            name = fields[1]
            if "/" in name or not name.endswith(".rdb"):
                raise EngineError(f"the AOF base {name!r} is not an RDB file")
            return aof_dir(paths) / name
    raise EngineError(f"the AOF manifest {str(manifest)!r} names no base file")


def _check_rdb_file(tool: Path, user: EngineUser, rdb: Path) -> str:
    """Run ``redis-check-rdb`` on ``rdb`` as ``user``; its ``N keys read`` line."""
    result = run_tool(user, [str(tool), str(rdb)])
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or "RDB looks OK" not in output:
        raise EngineError(
            f"redis-check-rdb found damage in {rdb.name} (exit {result.returncode}): "
            f"{output[-_OUTPUT_TAIL:]}"
        )
    keys_read = [line for line in output.splitlines() if line.endswith("keys read")]
    return keys_read[-1].removeprefix("[info] ") if keys_read else "no key count"


# logs --------------------------------------------------------------------------------


def _log_tail(paths: InstancePaths) -> str:
    with suppress(OSError), open(paths.log_file, "rb") as log:
        log.seek(max(0, os.fstat(log.fileno()).st_size - _LOG_TAIL))
        return " | ".join(log.read().decode("utf-8", "replace").splitlines()[-4:])
    return "(no log)"
