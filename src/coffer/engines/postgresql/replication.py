"""PostgreSQL streaming replication (the ``Replication`` seam).

Source (``open_source``, on the running primary)
    The role ``coffer_replicator`` (``LOGIN REPLICATION``, nothing else; scram verifier
    computed here) with the password given, allowed to run the file functions
    ``pg_rewind`` reads its source with; and a physical slot per replica, reserving WAL
    from the moment it is made, so a backup taken afterwards can seed the replica
    (``pg_hba.conf`` always lets that role open replication connections over TCP).
    Facts: ``slot`` and ``system_identifier``. ``close_source`` drops the slot (ending
    the replica's connection if it holds it); the role stays, shared by every replica.

Replica (``follow``)
    Records the upstream (``upstream``: host, port, role, slot; the password in a 0600
    password file) for ``configure`` to render as ``primary_conninfo`` and
    ``primary_slot_name``, and makes the data directory start as a standby
    (``standby.signal``). What it does depends on the instance's state:

    * stopped, freshly restored (``recovery.signal``): the restore's WAL is moved from
      ``restore_wal/`` into ``pg_wal`` (the standby replays it from there before it
      streams; nothing is left to clean up later), ``recovery.signal`` is replaced by
      ``standby.signal``. A point-in-time restore (a recovery target) cannot follow.
    * stopped replica: only the upstream changes.
    * stopped former primary: ``pg_rewind`` onto the upstream first (``rewind``), then as
      a replica. It must have been stopped after it stopped being the primary.
    * running replica: re-pointed live (the settings are rendered and reloaded: the WAL
      receiver reconnects to the new upstream and follows its new timeline).
    * running primary: refused (``EngineError``): stop it, then call ``follow``.

    Never asks for a restart (returns False): a stopped instance takes everything at
    its next start. The data directory must be of the upstream's cluster (checked
    against the ``system_identifier`` fact). Limits: a replica's ``max_connections``
    (flavor RAM) must be at least its primary's, or its recovery pauses; WAL the slot
    keeps is capped (``config``: a quarter of the source's volume), past which the slot
    is invalidated and the replica must be re-seeded.

``fence`` (a planned switchover, on the running primary): transactions read-only by
default from now on and across restarts (a ``fenced`` marker ``configure`` renders),
every other client session ended, and the end of a WAL record written after that
returned as the position a replica must reach. A fenced primary still writes some WAL
of its own (hint bits, checkpoints, its shutdown), so after the candidate's promotion
it has diverged: it follows only once stopped, through ``pg_rewind``.

``promote``: ``pg_promote(wait => true)`` (every received change is replayed first) and
a ``CHECKPOINT`` (so the control file names the new timeline at once: ``pg_rewind`` of
the old primary reads it there), then the upstream files and any ``standby.signal`` left
are removed and the settings are rendered without the upstream; a fence is lifted.

``state``: one query (see ``_STATE``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import time

from psycopg import errors as pg_errors

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths, ReplicaState, Upstream
from coffer.engines.host import EngineUser, write_private_file
from coffer.engines.postgresql import statements as q
from coffer.engines.postgresql.catalog import REPLICATION_USER
from coffer.engines.postgresql.config import (
    FENCE_MARKER,
    RECOVERY_SIGNAL,
    RECOVERY_TARGET,
    STANDBY_SIGNAL,
    restore_wal_dir,
)
from coffer.engines.postgresql.connection import Connection, connect, translate_errors
from coffer.engines.postgresql.lifecycle import PostgresLifecycle, is_standby
from coffer.engines.postgresql.rewind import rewind
from coffer.engines.postgresql.upstream import (
    UpstreamRecord,
    forget_upstream,
    render_passfile,
    write_upstream,
)
from coffer.engines.templates import fsync_dir
from coffer.errors import BadRequest, EngineError

__all__ = ["PostgresReplication", "slot_name"]

_SLOT_PREFIX = "coffer_"
_MAX_SLOT_BYTES = 63
_HASH_CHARS = 10
_PROMOTE_WAIT_S = 60
_STATE_TIMEOUT_S = 2
_STATE_STATEMENT_TIMEOUT_MS = 1500
#: how long ``close_source`` keeps trying to drop a slot a replica holds
_DROP_WAIT_S = 10.0
_DROP_POLL_S = 0.1
#: ``ControlFileData`` starts with the cluster's 64-bit system identifier
_CONTROL_IDENTIFIER = struct.Struct("=Q")

#: every other client session: whatever it was doing, it may not write any more
_END_SESSIONS = (
    "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
)
#: a WAL record of our own after every session that could write ended; its end LSN
_FENCE_RECORD = "SELECT (pg_logical_emit_message(true, 'coffer_fence', '') - '0/0'::pg_lsn)::bigint"
_ROLE_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname::text = %(name)s"
_SLOT_HOLDER = "SELECT active_pid FROM pg_replication_slots WHERE slot_name::text = %(slot)s"
_CREATE_SLOT = "SELECT pg_create_physical_replication_slot(%(slot)s, true)"
_HBA_ALLOWS_REPLICATION = (
    "SELECT 1 FROM pg_hba_file_rules WHERE error IS NULL AND type = 'host'"
    " AND 'replication' = ANY(database) AND %(name)s = ANY(user_name)"
)
#: role, replayed (replica) or written (primary) LSN, received LSN, seconds since the
#: last replayed transaction, WAL receiver status and upstream address
_STATE = """
SELECT r.standby,
       (CASE WHEN r.standby THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END
        - '0/0'::pg_lsn)::bigint,
       (pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,
       w.status, w.sender_host, w.sender_port
FROM (SELECT pg_is_in_recovery() AS standby) AS r
LEFT JOIN pg_stat_wal_receiver AS w ON true
"""


def slot_name(replica_id: str) -> str:
    """The physical slot kept for ``replica_id``: ``coffer_`` and the id where it is made
    of ``[a-z0-9_]`` and short enough, else a cleaned prefix and a hash of the id (so
    distinct ids never share a slot). ``BadRequest`` for an empty or unprintable id."""
    if not replica_id or not replica_id.isprintable():
        raise BadRequest(f"replica id {replica_id!r} is empty or unprintable")
    cleaned = re.sub(r"[^a-z0-9_]", "_", replica_id.lower())
    name = _SLOT_PREFIX + cleaned
    if cleaned == replica_id and len(name) <= _MAX_SLOT_BYTES:
        return name
    digest = hashlib.sha256(replica_id.encode()).hexdigest()[:_HASH_CHARS]
    room = _MAX_SLOT_BYTES - len(_SLOT_PREFIX) - 1 - _HASH_CHARS
    return f"{_SLOT_PREFIX}{cleaned[:room]}_{digest}"


class PostgresReplication:
    """The PostgreSQL ``Replication`` (stateless; see the module notes)."""

    follow_stops_primary = True

    def __init__(self, lifecycle: PostgresLifecycle) -> None:
        self._lifecycle = lifecycle

    # source ------------------------------------------------------------------------

    def open_source(
        self, paths: InstancePaths, spec: InstanceSpec, replica_id: str, user: str, password: str
    ) -> dict[str, str]:
        """Role, rewind grants and slot for ``replica_id`` (each kept if there);
        ``{"slot", "system_identifier"}``. ``BadRequest`` for another role name or a bad
        password or id; ``EngineError`` on a replica (open its primary instead)."""
        _check_user(user)
        render_passfile(user, password)
        slot = slot_name(replica_id)
        with translate_errors("preparing the source for a replica"), connect(paths, spec) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is None or row[0]:
                raise EngineError(
                    "this instance is a replica: a replica's source must be a primary"
                )
            verifier = _verifier(conn, user, password)
            exists = conn.execute(_ROLE_EXISTS, {"name": user}).fetchone() is not None
            with conn.transaction():
                if exists:
                    conn.execute(q.alter_replication_role(user, verifier))
                else:
                    conn.execute(q.create_replication_role(user, verifier))
                conn.execute(q.grant_rewind_reads(user))
            if conn.execute(_SLOT_HOLDER, {"slot": slot}).fetchone() is None:
                conn.execute(_CREATE_SLOT, {"slot": slot})
            hba_ready = conn.execute(_HBA_ALLOWS_REPLICATION, {"name": user}).fetchone()
        if hba_ready is None:
            # an instance configured before replicas existed: render and load pg_hba.conf
            self._lifecycle.configure(paths, spec)
            self._lifecycle.apply_parameters(paths, spec)
        return {"slot": slot, "system_identifier": _system_identifier(paths)}

    def close_source(self, paths: InstancePaths, spec: InstanceSpec, replica_id: str) -> None:
        """Drop ``replica_id``'s slot, ending the session holding it (the replica then
        cannot stream from here any more). Idempotent."""
        slot = slot_name(replica_id)
        deadline = time.monotonic() + _DROP_WAIT_S
        with translate_errors(f"dropping replication slot {slot}"), connect(paths, spec) as conn:
            while (row := conn.execute(_SLOT_HOLDER, {"slot": slot}).fetchone()) is not None:
                if row[0] is not None:
                    conn.execute("SELECT pg_terminate_backend(%s, 1000)", (row[0],))
                try:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                    return
                except (pg_errors.ObjectInUse, pg_errors.UndefinedObject):
                    pass  # the replica reconnected meanwhile, or another drop won
                if time.monotonic() > deadline:
                    raise EngineError(
                        f"replication slot {slot} stays in use by a replica after "
                        f"{_DROP_WAIT_S:.0f} s; stop that replica and try again"
                    )
                time.sleep(_DROP_POLL_S)

    # replica -----------------------------------------------------------------------

    def follow(self, paths: InstancePaths, spec: InstanceSpec, upstream: Upstream) -> bool:
        """Make the instance a replica of ``upstream`` (see the module notes); always
        False. Everything is checked before the first change."""
        record = _record(upstream)
        record.check(paths.root)
        render_passfile(upstream.user, upstream.password)
        _check_cluster(paths, upstream)
        user = EngineUser.lookup(paths.os_user)
        running = self._lifecycle.running_pid(paths) is not None
        restored = (paths.data_dir / RECOVERY_SIGNAL).is_file()
        if running and not is_standby(paths):
            raise EngineError(
                "this instance runs as a primary (or is still recovering a restore): stop it, "
                "then make it follow (a stopped former primary is rewound with pg_rewind)"
            )
        if running:
            write_upstream(paths, record, upstream.password, user)
            self._lifecycle.configure(paths, spec)
            self._lifecycle.apply_parameters(paths, spec)
            return False
        if restored:
            _check_no_recovery_target(paths)
        elif not is_standby(paths):
            bin_dir = self._lifecycle.installed_bin_dir(spec.version)
            rewind(paths, record, upstream.password, user=user, bin_dir=bin_dir)
        write_upstream(paths, record, upstream.password, user)
        if restored:
            _adopt_restored_wal(paths)
        write_private_file(paths.data_dir / STANDBY_SIGNAL, "", user)
        (paths.data_dir / RECOVERY_SIGNAL).unlink(missing_ok=True)
        fsync_dir(paths.data_dir)
        return False

    def fence(self, paths: InstancePaths, spec: InstanceSpec) -> int:
        """Make the running primary refuse writes until ``promote`` (a marker on the
        volume that ``configure`` renders as ``default_transaction_read_only``, loaded
        now), end every other client session, and return the end of a WAL record written
        after that: a replica whose position reaches it holds every committed change.

        Not a hard wall: like the volume guard's read-only, a session may still turn
        ``default_transaction_read_only`` off for itself; applications that do not are
        refused. On a replica, only its position is returned (it is read-only anyway).
        """
        write_private_file(paths.root / FENCE_MARKER, "", EngineUser.lookup(paths.os_user))
        self._lifecycle.configure(paths, spec)
        self._lifecycle.apply_parameters(paths, spec)
        with translate_errors("fencing"), connect(paths, spec) as conn:
            conn.execute("SET default_transaction_read_only = off")
            conn.execute("SET synchronous_commit = on")
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and row[0]:
                replayed = conn.execute(
                    "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint"
                ).fetchone()
                return int(replayed[0]) if replayed and replayed[0] is not None else 0
            conn.execute(_END_SESSIONS)
            with conn.transaction():
                final = conn.execute(_FENCE_RECORD).fetchone()
        if final is None:
            raise EngineError("PostgreSQL did not report the fence's WAL position")
        return int(final[0])

    def promote(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Promote the running replica and forget its upstream, or lift a primary's
        ``fence``; ``EngineError`` if the promotion does not end within a minute."""
        with translate_errors("promoting"), connect(paths, spec) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and row[0]:
                done = conn.execute(
                    "SELECT pg_promote(wait => true, wait_seconds => %s)", (_PROMOTE_WAIT_S,)
                ).fetchone()
                if done is None or not done[0]:
                    raise EngineError(
                        f"the replica did not finish promoting within {_PROMOTE_WAIT_S} s; "
                        f"see {paths.log_file}"
                    )
                # the control file names the new timeline only after a checkpoint: until
                # then pg_rewind of the old primary would see no divergence
                conn.execute("CHECKPOINT")
        (paths.data_dir / STANDBY_SIGNAL).unlink(missing_ok=True)
        forget_upstream(paths)
        (paths.root / FENCE_MARKER).unlink(missing_ok=True)
        self._lifecycle.configure(paths, spec)
        self._lifecycle.apply_parameters(paths, spec)

    def state(self, paths: InstancePaths, spec: InstanceSpec) -> ReplicaState:
        """Role and progress from one query over the private socket (≤ ~2 s)."""
        with (
            translate_errors("reading the replication state"),
            connect(
                paths,
                spec,
                timeout_s=_STATE_TIMEOUT_S,
                statement_timeout_ms=_STATE_STATEMENT_TIMEOUT_MS,
            ) as conn,
        ):
            row = conn.execute(_STATE).fetchone()
        if row is None:
            raise EngineError("PostgreSQL reported no replication state")
        standby, position, received, since_replay, status, host, port = row
        if not standby:
            return ReplicaState(role="primary", position=int(position or 0), detail="primary")
        streaming = status == "streaming"
        lag: float | None
        if received is not None and position is not None and position >= received:
            lag = 0.0  # everything received is applied
        elif since_replay is not None:
            lag = max(0.0, float(since_replay))
        else:
            lag = None
        where = f"{host}:{port}" if host else "its upstream"
        detail = f"streaming from {where}" if streaming else f"not streaming ({status or 'idle'})"
        return ReplicaState(
            role="replica",
            streaming=streaming,
            lag_s=lag,
            position=int(position or 0),
            detail=detail,
        )


def _check_user(user: str) -> None:
    if user != REPLICATION_USER:
        raise BadRequest(
            f"replication user {user!r} is not supported: PostgreSQL replicas stream as "
            f"{REPLICATION_USER!r}, the role pg_hba.conf lets in for replication"
        )


def _record(upstream: Upstream) -> UpstreamRecord:
    _check_user(upstream.user)
    slot = upstream.facts.get("slot")
    if not slot:
        raise BadRequest(
            "the upstream's facts name no replication slot: open the source for this replica"
        )
    return UpstreamRecord(host=upstream.host, port=upstream.port, user=upstream.user, slot=slot)


def _check_cluster(paths: InstancePaths, upstream: Upstream) -> None:
    """``EngineError`` unless the data directory exists and (when the facts say) is of
    the upstream's database cluster."""
    if not (paths.data_dir / "PG_VERSION").is_file():
        raise EngineError(
            f"{str(paths.data_dir)!r} is not a PostgreSQL data directory: restore a backup of "
            "the upstream into it first"
        )
    expected = upstream.facts.get("system_identifier")
    local = _system_identifier(paths)
    if expected and expected != local:
        raise EngineError(
            f"this instance's data is of another database cluster (system identifier {local}) "
            f"than its upstream's ({expected}); re-seed it from a backup of the upstream"
        )


def _check_no_recovery_target(paths: InstancePaths) -> None:
    if (restore_wal_dir(paths.root) / RECOVERY_TARGET).exists():
        raise EngineError(
            "this instance was restored to a point in time: a replica must be restored from "
            "a full backup of its upstream without a recovery target"
        )


def _adopt_restored_wal(paths: InstancePaths) -> None:
    """Move the restore's WAL into ``pg_wal`` (replacing the backup's copy of a segment:
    the restored one is complete) and remove ``restore_wal``. Idempotent."""
    restore_dir = restore_wal_dir(paths.root)
    if not restore_dir.is_dir():
        return
    wal_dir = paths.data_dir / "pg_wal"
    for entry in sorted(os.scandir(restore_dir), key=lambda e: e.name):
        if entry.is_file(follow_symlinks=False):
            os.replace(entry.path, wal_dir / entry.name)
    fsync_dir(wal_dir)
    shutil.rmtree(restore_dir)


def _system_identifier(paths: InstancePaths) -> str:
    """The cluster's system identifier, from ``global/pg_control``."""
    path = paths.data_dir / "global" / "pg_control"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            raw = os.read(fd, _CONTROL_IDENTIFIER.size)
        finally:
            os.close(fd)
        (identifier,) = _CONTROL_IDENTIFIER.unpack(raw)
    except (OSError, struct.error):
        raise EngineError(f"cannot read the control file {str(path)!r}") from None
    return str(identifier)


def _verifier(conn: Connection, user: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of ``password``, computed client-side."""
    verifier = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256")
    return verifier.decode("ascii")
