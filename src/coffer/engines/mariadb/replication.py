"""MariaDB GTID replication (the ``Replication`` seam).

Source
    ``open_source`` makes the replication account ``coffer_replicator@'%'``
    (``catalog.REPLICATION_USER``, the only name accepted; reserved, so tenants can
    neither see nor touch it) exist with the given password (sent as its hash) and
    REPLICATION SLAVE only. It is written outside the binary log: replicas never replay
    it (a replayed ``ALTER USER`` for an account a replica lacks would stop its SQL
    thread), yet every replica restored from a later backup has the account, and the
    agent calls ``open_source`` on a promoted replica before others follow it, which
    (re)makes it there with the current password. Nothing is kept per replica: the
    binary log is kept ``config.BINLOG_EXPIRE_S`` whoever reads it, so ``open_source``
    returns no facts and ``close_source`` does nothing.

Replica
    ``follow`` makes the instance a read-only replica using GTIDs
    (``MASTER_USE_GTID = slave_pos``): ``STOP SLAVE``, the GTID position to start from,
    ``CHANGE MASTER TO`` host, port, user, password, ``START SLAVE``, all outside the
    binary log. The position is the seed backup's ``gtid`` when ``upstream.seed`` is
    given (its ``gtid`` is required then); for an instance that was a primary (no
    upstream configured), the later per domain of its ``gtid_slave_pos`` and
    ``gtid_binlog_pos`` (its own writes, or those a roll forward replayed); a replica
    being re-pointed keeps its ``gtid_slave_pos``. A seeded replica whose binary log holds
    no GTID yet also takes the seed as ``gtid_binlog_state``, so its own numbering (after
    a promotion) continues after the seed and replicas still at the seed find it.

    With the engine stopped (right after ``restore``) no SQL can run: ``follow`` writes
    ``<root>/follow-pending.json`` (0600, the instance's account; it holds the password)
    and ``<root>/replica.json`` and returns False; ``lifecycle.bootstrap`` at the first
    start applies it (``apply_pending_follow``) and removes the pending file before the
    replica threads start, so a repeated bootstrap never rewinds the position. With the
    engine running it applies at once and returns False too: nothing needs a restart.

    ``<root>/replica.json`` (upstream host, port and user; no password) marks a
    replica: ``configure`` renders ``read_only = ON`` and ``apply_parameters`` keeps it
    on. Tenants never hold SUPER or READ ONLY ADMIN (``admin``), so they cannot write;
    the replica threads and the agent can. The password lives in MariaDB's own
    ``master.info`` in the data directory (0700), and in the pending file until the first
    start; it is never logged (the agent's sessions are outside the general and slow
    logs; ``CHANGE MASTER`` is not binary-logged and its error-log note omits it).

    After ``START SLAVE`` ``follow`` watches the replica threads for up to
    ``START_CHECK_S``: an upstream that refuses the login, or lacks the replica's GTID
    position (the replica has changes the upstream never had, e.g. an old primary that
    wrote after a failover: it must be re-seeded from a backup), raises ``EngineError``;
    an upstream still unreachable is left to the threads' own retries (``state``
    shows it).

Fencing
    ``fence`` (a planned switchover) writes ``<root>/fenced`` first (``configure`` then
    renders ``read_only`` across restarts), turns ``read_only`` on, ends every session
    but the agent's own, MariaDB's threads and the replicas' binary log readers (open
    transactions roll back), and returns the position reached in the GTID domain (as
    ``state``): a replica at that position holds every committed transaction.
    ``promote`` lifts it.

Promotion
    ``promote`` stops the IO thread, waits (up to ``CATCH_UP_S``) until the SQL thread has
    applied every transaction received, then ``STOP SLAVE``, ``RESET SLAVE ALL``,
    ``read_only`` back to ``spec.read_only``, and removes ``replica.json`` (and a fence).
    On a primary it only lifts a fence. A replica
    whose SQL thread stopped on an error with changes unapplied is refused with
    ``EngineError`` (its IO thread restarted), rather than promoted without them.

State
    ``SHOW SLAVE STATUS`` and the GTID positions over the agent's socket (2 s timeouts):
    role ``replica`` when an upstream is configured (or pending), else ``primary``;
    ``streaming`` when both replica threads run; ``lag_s`` is ``Seconds_Behind_Master``;
    ``position`` the sequence number reached in the instance's GTID domain (the later of
    ``gtid_slave_pos`` and ``gtid_binlog_pos``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pymysql  # type: ignore[import-untyped,unused-ignore]

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths, ReplicaState, Upstream
from coffer.engines.host import EngineUser, write_private_file
from coffer.engines.mariadb import gtid as g
from coffer.engines.mariadb import statements as q
from coffer.engines.mariadb.catalog import (
    INTERNAL_ADMIN,
    INTERNAL_ADMIN_HOST,
    NAME_PATTERN,
    REPLICATION_USER,
)
from coffer.engines.mariadb.connection import (
    Session,
    connect,
    describe,
    error_code,
    translate_errors,
)
from coffer.errors import BadRequest, EngineError

__all__ = [
    "CATCH_UP_S",
    "FENCE_MARKER",
    "PENDING_FOLLOW",
    "REPLICA_MARKER",
    "START_CHECK_S",
    "MariaDBReplication",
    "apply_pending_follow",
    "is_replica",
    "kept_read_only",
]

REPLICA_MARKER = "replica.json"
FENCE_MARKER = "fenced"
PENDING_FOLLOW = "follow-pending.json"
#: How long ``follow`` watches the replica threads after starting them.
START_CHECK_S = 5.0
#: How long ``promote`` waits for the SQL thread to apply what was received.
CATCH_UP_S = 60.0
_STATE_TIMEOUT_S = 2
#: MariaDB keeps at most this many characters of ``MASTER_PASSWORD``.
_MAX_PASSWORD = 32
_MAX_USER = 128
_HOST = re.compile(r"[A-Za-z0-9.:-]{1,255}")
_CLIENT_ERRORS_FROM = 2000
#: IO thread errors no retry cures: the login refused, the position not in the upstream.
_FATAL_IO_ERRORS = {
    1045: "the upstream refused the replication login (check the account and password)",
    1236: (
        "the upstream's binary log lacks this instance's GTID position: the instance has "
        "changes the upstream never had (or the upstream purged what it needs); re-seed "
        "it from a backup of the upstream"
    ),
}
_ACCOUNT_GRANT = "GRANT REPLICATION SLAVE ON *.* TO %s@%s"
#: Sessions ``fence`` leaves alone: MariaDB's own threads and the replicas' readers.
_SPARED_USERS = frozenset({"system user", "event_scheduler", REPLICATION_USER})
_UNKNOWN_THREAD = 1094


class MariaDBReplication:
    """The MariaDB ``Replication``: stateless; every method opens its own session over
    the instance's socket and is idempotent."""

    follow_stops_primary = False

    def open_source(
        self, paths: InstancePaths, spec: InstanceSpec, replica_id: str, user: str, password: str
    ) -> dict[str, str]:
        """Make ``coffer_replicator@'%'`` exist with ``password`` and REPLICATION SLAVE
        only, outside the binary log. Returns no facts (nothing is kept per replica)."""
        if user != REPLICATION_USER:
            raise BadRequest(
                f"the MariaDB replication account must be {REPLICATION_USER!r} (a name "
                f"reserved for it), not {user!r}"
            )
        _check_password(password)
        host = "%"
        with translate_errors("making the replication account"), connect(paths) as session:
            session.execute("SET SESSION sql_log_bin = 0")
            if session.execute(q.USER_EXISTS, (user, host)):
                session.execute(*q.alter_password(user, host, password))
            else:
                session.execute(*q.create_user(user, host, password))
            grants = [str(row[0]) for row in session.execute("SHOW GRANTS FOR %s@%s", (user, host))]
            if len(grants) != 1 or not grants[0].startswith("GRANT REPLICATION SLAVE ON *.*"):
                session.execute(*q.revoke_all(user, host))
                session.execute(_ACCOUNT_GRANT, (user, host))
        return {}

    def close_source(self, paths: InstancePaths, spec: InstanceSpec, replica_id: str) -> None:
        """Nothing to drop: the source keeps no per-replica state (module docstring)."""

    def follow(self, paths: InstancePaths, spec: InstanceSpec, upstream: Upstream) -> bool:
        """Follow ``upstream`` now (engine running) or from the first start (stopped:
        ``bootstrap`` applies it). Always returns False. ``BadRequest`` for an unusable
        upstream, before anything changes; ``EngineError`` if MariaDB fails or the
        upstream refuses this replica (module docstring)."""
        target = _Target.of(upstream)
        owner = EngineUser.lookup(paths.os_user)
        if not _accepting(paths):
            if target.gtid is None:
                raise BadRequest(
                    "a stopped MariaDB (just restored) can follow only from its backup's "
                    "position: the upstream's seed needs the backup's 'gtid'"
                )
            write_private_file(paths.root / PENDING_FOLLOW, target.private_json(), owner)
            write_private_file(paths.root / REPLICA_MARKER, target.public_json(), owner)
            return False
        with translate_errors(f"following {target.address}"), connect(paths) as session:
            _follow_now(session, paths, spec, target, owner)
        return False

    def fence(self, paths: InstancePaths, spec: InstanceSpec) -> int:
        """Refuse writes from now on, persistently, end the sessions that could write,
        and return the final position (module docstring). Idempotent."""
        owner = EngineUser.lookup(paths.os_user)
        write_private_file(paths.root / FENCE_MARKER, "read-only until promoted\n", owner)
        with translate_errors("fencing the primary"), connect(paths) as session:
            session.execute("SET GLOBAL read_only = ON")
            for session_id, user, host in session.execute(q.SESSIONS):
                if user in _SPARED_USERS or (user, host) == (INTERNAL_ADMIN, INTERNAL_ADMIN_HOST):
                    continue
                try:
                    session.execute(*q.kill(session_id))
                except pymysql.Error as exc:  # it ended meanwhile
                    if error_code(exc) != _UNKNOWN_THREAD:
                        raise
            return _position(session)

    def promote(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Stop following, keeping every transaction received, and accept writes
        (``read_only`` as ``spec.read_only`` says). On a primary only a fence is lifted.
        Blocks until the SQL thread caught up (``CATCH_UP_S`` at most, then
        ``EngineError``)."""
        marked = (
            is_replica(paths)
            or (paths.root / PENDING_FOLLOW).exists()
            or (paths.root / FENCE_MARKER).exists()
        )
        with translate_errors("promoting the replica"), connect(paths) as session:
            status = _slave_status(session)
            if status is None and not marked:
                return
            if status is not None:
                session.execute("STOP SLAVE IO_THREAD")
                _wait_applied(session)
                session.execute("STOP SLAVE")
                session.execute("RESET SLAVE ALL")
            session.execute(f"SET GLOBAL read_only = {'ON' if spec.read_only else 'OFF'}")
        for name in (PENDING_FOLLOW, REPLICA_MARKER, FENCE_MARKER):
            (paths.root / name).unlink(missing_ok=True)

    def state(self, paths: InstancePaths, spec: InstanceSpec) -> ReplicaState:
        """Role and progress from ``SHOW SLAVE STATUS`` and the GTID positions; within
        ~2 s; ``EngineError`` if MariaDB cannot be asked."""
        with (
            translate_errors("reading the replication state"),
            connect(paths, timeout_s=_STATE_TIMEOUT_S, read_timeout_s=_STATE_TIMEOUT_S) as session,
        ):
            status = _slave_status(session)
            position = _position(session)
        if status is not None:
            return _replica_state(status, position)
        if (paths.root / PENDING_FOLLOW).exists():
            detail = "replica: waiting for bootstrap to start following its upstream"
            return ReplicaState(role="replica", position=position, detail=detail)
        if is_replica(paths):
            detail = "replica without an upstream (an interrupted promotion: promote again)"
            return ReplicaState(role="replica", position=position, detail=detail)
        if (paths.root / FENCE_MARKER).exists():
            return ReplicaState(role="primary", position=position, detail="primary, fenced")
        return ReplicaState(role="primary", position=position, detail="primary")


def is_replica(paths: InstancePaths) -> bool:
    """Whether the instance follows (or is about to follow) an upstream: ``configure``
    then renders it read-only."""
    return (paths.root / REPLICA_MARKER).exists()


def kept_read_only(paths: InstancePaths) -> bool:
    """Whether replication keeps the instance read-only (a replica, or a fenced
    primary), whatever ``spec.read_only`` says."""
    return is_replica(paths) or (paths.root / FENCE_MARKER).exists()


def apply_pending_follow(paths: InstancePaths, spec: InstanceSpec) -> None:
    """Apply what ``follow`` recorded while the engine was stopped, once (the running
    engine's first ``bootstrap``); nothing if nothing is pending. ``EngineError`` as
    ``follow``; the pending file then stays for the next attempt."""
    pending = paths.root / PENDING_FOLLOW
    try:
        text = pending.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    target = _Target.from_private_json(text)
    owner = EngineUser.lookup(paths.os_user)
    with translate_errors(f"following {target.address}"), connect(paths) as session:
        _follow_now(session, paths, spec, target, owner)


# --- the upstream -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A validated upstream: where to connect, and the seed's GTID position (if any)."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    gtid: str | None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def of(cls, upstream: Upstream) -> _Target:
        if not _HOST.fullmatch(upstream.host):
            raise BadRequest(f"upstream host {upstream.host!r} is not an IP address or host name")
        if not 1 <= upstream.port <= 65535:
            raise BadRequest(f"upstream port {upstream.port} is outside 1-65535")
        if not NAME_PATTERN.fullmatch(upstream.user) or len(upstream.user) > _MAX_USER:
            raise BadRequest(f"upstream user {upstream.user!r} is not a valid account name")
        _check_password(upstream.password)
        gtid: str | None = None
        if upstream.seed:
            if "gtid" not in upstream.seed:
                raise BadRequest(
                    "the seed backup's positions hold no 'gtid': take a full backup with "
                    "the binary log on and seed from it"
                )
            seed = g.parse_position(upstream.seed["gtid"], what="the seed backup's gtid")
            gtid = g.format_position(seed)
        return cls(upstream.host, upstream.port, upstream.user, upstream.password, gtid)

    def public_json(self) -> str:
        return json.dumps({"host": self.host, "port": self.port, "user": self.user}) + "\n"

    def private_json(self) -> str:
        values = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "gtid": self.gtid,
        }
        return json.dumps(values) + "\n"

    @classmethod
    def from_private_json(cls, text: str) -> _Target:
        try:
            data: Mapping[str, Any] = json.loads(text)
            seed = {} if data["gtid"] is None else {"gtid": str(data["gtid"])}
            upstream = Upstream(
                host=str(data["host"]),
                port=int(data["port"]),
                user=str(data["user"]),
                password=str(data["password"]),
                seed=seed,
            )
        except (ValueError, KeyError, TypeError):
            raise EngineError(
                f"{PENDING_FOLLOW} is unreadable; call follow again with the upstream"
            ) from None
        return cls.of(upstream)


def _check_password(password: str) -> None:
    if not password:
        raise BadRequest("the replication password must not be empty")
    if len(password) > _MAX_PASSWORD:
        raise BadRequest(
            f"the replication password has {len(password)} characters; MariaDB keeps at "
            f"most {_MAX_PASSWORD}"
        )


# --- following ----------------------------------------------------------------------------


def _follow_now(
    session: Session,
    paths: InstancePaths,
    spec: InstanceSpec,
    target: _Target,
    owner: EngineUser,
) -> None:
    """Point the running instance at ``target`` and start the replica threads. If it
    fails before ``CHANGE MASTER`` took effect, a primary is left a writable primary."""
    session.execute("SET SESSION sql_log_bin = 0")
    was_primary = _slave_status(session) is None and not is_replica(paths)
    session.execute("SET GLOBAL read_only = ON")
    try:
        session.execute("STOP SLAVE")
        start = _start_position(session, target, was_primary)
        if start is not None:
            session.execute("SET GLOBAL gtid_slave_pos = %s", (start,))
        if target.gtid is not None:
            _seed_binlog_state(session, target.gtid)
        session.execute(
            "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s,"
            " MASTER_PASSWORD = %s, MASTER_USE_GTID = slave_pos",
            (target.host, target.port, target.user, target.password),
        )
    except BaseException:
        if was_primary:
            session.execute(f"SET GLOBAL read_only = {'ON' if spec.read_only else 'OFF'}")
        raise
    write_private_file(paths.root / REPLICA_MARKER, target.public_json(), owner)
    # from here on the replica's own position rules: never apply the seed twice
    (paths.root / PENDING_FOLLOW).unlink(missing_ok=True)
    session.execute("START SLAVE")
    _check_started(session, target)


def _start_position(session: Session, target: _Target, was_primary: bool) -> str | None:
    """The ``gtid_slave_pos`` to start from, or None to keep the current one."""
    if target.gtid is not None:
        return target.gtid
    if not was_primary:
        return None
    ((slave_pos, binlog_pos),) = session.execute(
        "SELECT @@GLOBAL.gtid_slave_pos, @@GLOBAL.gtid_binlog_pos"
    )
    reached = g.latest(
        g.parse_position(str(slave_pos), what="gtid_slave_pos"),
        g.parse_position(str(binlog_pos), what="gtid_binlog_pos"),
    )
    return g.format_position(reached)


def _seed_binlog_state(session: Session, seed: str) -> None:
    """Start the binary log's GTID state at ``seed`` if no GTID was logged yet."""
    ((state,),) = session.execute("SELECT @@GLOBAL.gtid_binlog_state")
    if not str(state).strip() and seed:
        session.execute("SET GLOBAL gtid_binlog_state = %s", (seed,))


def _check_started(session: Session, target: _Target) -> None:
    """Watch the replica threads until both run; raise on errors no retry cures."""
    deadline = time.monotonic() + START_CHECK_S
    while True:
        status = _slave_status(session)
        if status is None:
            raise EngineError(f"following {target.address}: the replica threads vanished")
        io_error = int(status.get("Last_IO_Errno") or 0)
        if io_error in _FATAL_IO_ERRORS:
            session.execute("STOP SLAVE IO_THREAD")
            raise EngineError(
                f"following {target.address}: {_FATAL_IO_ERRORS[io_error]} "
                f"(MariaDB: {status.get('Last_IO_Error')})"
            )
        sql_error = int(status.get("Last_SQL_Errno") or 0)
        if sql_error and status.get("Slave_SQL_Running") != "Yes":
            raise EngineError(
                f"following {target.address}: applying the upstream's changes failed "
                f"(MariaDB: {status.get('Last_SQL_Error')}); re-seed the replica"
            )
        if status.get("Slave_IO_Running") == "Yes" and status.get("Slave_SQL_Running") == "Yes":
            return
        if time.monotonic() >= deadline:
            return  # still connecting: the IO thread keeps retrying; state() shows it
        time.sleep(0.1)


# --- promotion and state ------------------------------------------------------------------


def _wait_applied(session: Session) -> None:
    """Wait until the SQL thread applied every transaction the IO thread received."""
    deadline = time.monotonic() + CATCH_UP_S
    while True:
        status = _slave_status(session)
        received = "" if status is None else str(status.get("Gtid_IO_Pos") or "")
        ((done,),) = session.execute("SELECT MASTER_GTID_WAIT(%s, 1)", (received,))
        if done == 0:
            return
        if status is not None and status.get("Slave_SQL_Running") != "Yes":
            session.execute("START SLAVE IO_THREAD")
            raise EngineError(
                "cannot promote: the replica stopped applying its upstream's changes "
                f"(MariaDB: {status.get('Last_SQL_Error')}) and has received transactions "
                f"up to {received} it has not applied; promote another replica"
            )
        if time.monotonic() >= deadline:
            session.execute("START SLAVE IO_THREAD")
            raise EngineError(
                f"cannot promote yet: the replica is still applying what it received "
                f"(up to GTID {received}) after {CATCH_UP_S:.0f} s; try again"
            )


def _position(session: Session) -> int:
    """The sequence number reached in the instance's GTID domain (applied or logged)."""
    ((domain, slave_pos, binlog_pos),) = session.execute(
        "SELECT @@GLOBAL.gtid_domain_id, @@GLOBAL.gtid_slave_pos, @@GLOBAL.gtid_binlog_pos"
    )
    reached = g.latest(
        g.parse_position(str(slave_pos), what="gtid_slave_pos"),
        g.parse_position(str(binlog_pos), what="gtid_binlog_pos"),
    )
    return g.sequence(reached, int(domain))


def _slave_status(session: Session) -> dict[str, Any] | None:
    rows = session.execute_named("SHOW SLAVE STATUS")
    return rows[0] if rows else None


def _replica_state(status: Mapping[str, Any], position: int) -> ReplicaState:
    io, sql = status.get("Slave_IO_Running"), status.get("Slave_SQL_Running")
    behind = status.get("Seconds_Behind_Master")
    detail = f"replica of {status.get('Master_Host')}:{status.get('Master_Port')}"
    detail += f" (IO {io}, SQL {sql})"
    error = status.get("Last_IO_Error") or status.get("Last_SQL_Error")
    if error:
        detail += f": {error}"
    return ReplicaState(
        role="replica",
        streaming=io == "Yes" and sql == "Yes",
        lag_s=None if behind is None else float(behind),
        position=position,
        detail=detail,
    )


def _accepting(paths: InstancePaths) -> bool:
    """Whether the engine answers on its socket (False: it is stopped)."""
    try:
        with connect(paths, timeout_s=_STATE_TIMEOUT_S, read_timeout_s=_STATE_TIMEOUT_S) as session:
            session.execute("SELECT 1")
    except pymysql.Error as exc:
        code = error_code(exc)
        if code is None or code >= _CLIENT_ERRORS_FROM:
            return False
        raise EngineError(f"reaching MariaDB: {describe(exc)}") from None
    return True
