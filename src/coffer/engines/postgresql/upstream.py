"""A replica's upstream, kept on the instance's volume beside the data directory.

``<root>/upstream.json`` holds what the replica follows (host, port, replication role,
slot; no secret) and ``<root>/upstream.pgpass`` the role's password in libpq's password
file format (``*:*:*:user:password``). Both are 0600 and owned by the instance's
account: the WAL receiver reads the password file itself, so the password is in no
setting, no ``pg_stat_wal_receiver`` row and no log. ``configure`` renders
``primary_conninfo`` from them while they exist (``read_upstream``); ``promote`` forgets
them. They live outside the data directory, so neither a base backup nor ``pg_rewind``
copies them to another instance.

Files are read without following symlinks and every value is checked again on reading
(the instance's account, which a tenant superuser can run programs as, owns them).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from coffer.engines.base import InstancePaths
from coffer.engines.host import EngineUser, write_private_file
from coffer.engines.postgresql.config import StandbySource, primary_conninfo
from coffer.errors import BadRequest, EngineError

__all__ = [
    "UPSTREAM_FILE",
    "UPSTREAM_PASSFILE",
    "UpstreamRecord",
    "forget_upstream",
    "read_upstream",
    "render_passfile",
    "write_upstream",
]

UPSTREAM_FILE = "upstream.json"
UPSTREAM_PASSFILE = "upstream.pgpass"
_MAX_FILE_BYTES = 4096


@dataclass(frozen=True)
class UpstreamRecord:
    """What a replica follows, as ``upstream.json`` holds it."""

    host: str
    port: int
    user: str
    slot: str

    def source(self, root: Path) -> StandbySource:
        """The upstream of the instance at ``root`` as ``config`` renders it."""
        return StandbySource(
            host=self.host,
            port=self.port,
            user=self.user,
            slot=self.slot,
            passfile=root / UPSTREAM_PASSFILE,
        )

    def check(self, root: Path) -> None:
        """``BadRequest`` naming the field ``config`` could not render."""
        primary_conninfo(self.source(root))


def render_passfile(user: str, password: str) -> str:
    """A libpq password file with one line matching every host, port and database for
    ``user``; ``BadRequest`` for an empty password or one with a line break or NUL."""
    if not password:
        raise BadRequest("the replication password must not be empty")
    if any(char in password for char in "\r\n\0"):
        raise BadRequest("the replication password must not contain line breaks or NUL")
    return f"*:*:*:{_escape(user)}:{_escape(password)}\n"


def write_upstream(
    paths: InstancePaths, record: UpstreamRecord, password: str, user: EngineUser
) -> None:
    """Write both files (checked first: nothing is written for a bad record or password);
    the password file first, so the record never names a password it lacks."""
    record.check(paths.root)
    passfile = render_passfile(record.user, password)
    text = json.dumps(
        {"host": record.host, "port": record.port, "user": record.user, "slot": record.slot}
    )
    write_private_file(paths.root / UPSTREAM_PASSFILE, passfile, user)
    write_private_file(paths.root / UPSTREAM_FILE, text + "\n", user)


def read_upstream(paths: InstancePaths) -> UpstreamRecord | None:
    """The recorded upstream, or None if the instance follows no one. ``EngineError`` if
    the record is not a regular file of valid values."""
    try:
        raw = _read_regular(paths.root / UPSTREAM_FILE)
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        record = UpstreamRecord(
            host=str(data["host"]),
            port=int(data["port"]),
            user=str(data["user"]),
            slot=str(data["slot"]),
        )
        record.check(paths.root)
    except (ValueError, KeyError, TypeError, BadRequest):
        raise EngineError(
            f"{str(paths.root / UPSTREAM_FILE)!r} is damaged; make the replica follow its "
            "upstream again"
        ) from None
    return record


def forget_upstream(paths: InstancePaths) -> None:
    """Remove both files (the record first). Idempotent."""
    (paths.root / UPSTREAM_FILE).unlink(missing_ok=True)
    (paths.root / UPSTREAM_PASSFILE).unlink(missing_ok=True)


def _read_regular(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise EngineError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise EngineError(f"{str(path)!r} is not a regular file")
        return os.read(fd, _MAX_FILE_BYTES)
    finally:
        os.close(fd)


def _escape(field: str) -> str:
    return field.replace("\\", "\\\\").replace(":", "\\:")
