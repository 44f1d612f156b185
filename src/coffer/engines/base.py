"""The engine seam. An engine is composed of three collaborators (no inheritance):

* ``Catalog``   — pure facts and rules, importable by the control plane (no I/O).
* ``Lifecycle`` — host-side: prepare a data directory, render configuration, the argv of
  the foreground server process, adoption of a running one, probing.
* ``Admin``     — host-side: users, databases, grants, root, through the engine's own
  client library over a private local channel (never the network).
* ``Backups``   — host-side: physical backups of a running instance streamed out with the
  engine's own tools, and restores of them into a new instance's data directory (rolled
  forward to a point in time from the shipped change log, where the engine has one).
* ``LogArchive`` — host-side, optional: the files of an instance's change log (WAL,
  binary log) as they become final, which the agent ships for point-in-time recovery.
* ``Replication`` — host-side, optional: a source keeping changes for its replicas, a
  replica following its upstream read-only, promotion, and the state of both.
* ``Stats`` — host-side, optional: the engine's cumulative activity counters, which the
  agent turns into rates for ``/metrics``.
* ``GuestLogFiles`` — host-side: where the text of each log the catalog exposes
  (``Catalog.guest_logs``) is, for the agent to publish.

Engines raise ``coffer.errors`` exceptions (``BadRequest`` for duplicates and bad names,
``NotFound`` for unknown users/databases, ``NotImplementedByDatastore`` for what the engine
has no notion of, ``EngineError`` for failures). The agent carries them to the API.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from coffer.contracts.engine import (
    ActivityKind,
    DatabaseSpec,
    InstanceSpec,
    ParameterRule,
    Probe,
    UserSpec,
    UserUpdate,
    UserView,
)
from coffer.domain.guest_logs import LogDef


@dataclass(frozen=True)
class InstancePaths:
    """Where one instance lives on its host, and who owns it.

    ``root`` is the volume's mount point. ``os_user`` is the unprivileged OS account that
    owns the instance's files and runs its processes: one account per instance, so a
    tenant with engine superuser rights (which can run programs) reaches nothing of
    another instance. The agent creates the account before ``prepare``.
    """

    root: Path
    os_user: str

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def run_dir(self) -> Path:
        """Private directory for unix sockets and pid files (outside the data directory)."""
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "engine.log"


class Catalog(Protocol):
    """Pure engine facts used by the control plane to validate before writing."""

    name: str
    default_version: str
    versions: tuple[str, ...]
    #: whether ``Backups.backup`` takes incrementals (a parent); if not, the control plane
    #: answers an incremental request with 501 naming the datastore
    incremental_backups: bool
    #: whether the engine has a ``LogArchive`` and restores to a point in time
    point_in_time_recovery: bool

    #: whether replication carries users and grants to replicas (if not, the control
    #: plane makes each account change on the replicas too)
    accounts_replicate: bool
    #: the logs users may list, switch and publish (``domain.guest_logs``); every engine
    #: has the SYS log ``error`` (its server log, ``InstancePaths.log_file``)
    guest_logs: tuple[LogDef, ...]
    #: how a new replica gets its data: "backup" — restored from a fresh full backup of
    #: its source (``Backups``), then following; "engine" — starts empty and the engine
    #: copies the data itself once it follows; None — the engine has no replicas
    replica_seed: str | None

    def log_start(self, positions: Mapping[str, str]) -> str | None:
        """The first change-log file a point-in-time restore from a backup with these
        ``positions`` reads (older shipped files serve no restore from it), or None."""
        ...

    def validate_database(self, db: DatabaseSpec) -> None:
        """Raise ``BadRequest`` naming the problem if ``db`` cannot be created."""

    def validate_user(self, user: UserSpec) -> None:
        """Raise ``BadRequest`` naming the problem if ``user`` cannot be created."""

    def validate_parameters(self, parameters: Mapping[str, object]) -> None:
        """Engine-specific checks of configuration values already valid per the rules
        (e.g. a value's characters); raise ``BadRequest`` naming the parameter."""

    def memory_settings(self, ram_mb: int) -> dict[str, str]:
        """Engine settings derived from flavor RAM (shown to users, rendered by Lifecycle)."""
        ...

    def parameter_rules(self, version: str) -> tuple[ParameterRule, ...]:
        """The parameters configuration groups may set for ``version`` (may be empty).

        Values are validated against these rules by the control plane
        (``coffer.domain.parameters``) before anything is stored; ``configure`` renders
        ``spec.parameters`` holding only such validated values.
        """
        ...


class Lifecycle(Protocol):
    """Host-side control of one engine's processes and files. All methods are idempotent."""

    stop_signal: signal.Signals

    def installed_versions(self) -> list[str]:
        """Versions whose binaries exist on this host."""
        ...

    def warm_up(self, version: str) -> None:
        """Build whatever makes the next ``prepare`` of ``version`` fast (e.g. a template
        data directory). Idempotent; may block for seconds; the agent runs it in the
        background at start-up."""

    def prepare(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Create the data directory (owned by the engine user, mode 0700) if it is absent.

        May take seconds (initdb or template clone). Must leave no half-made directory:
        build in a temporary place and rename into ``paths.data_dir``.
        """

    def configure(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Render configuration for ``spec``; takes effect at the next start."""

    def command(self, paths: InstancePaths, spec: InstanceSpec) -> list[str]:
        """argv of the engine server process, run in the foreground by the agent."""
        ...

    def running_pid(self, paths: InstancePaths) -> int | None:
        """pid of an engine already serving ``paths`` (left by a previous agent), or None."""
        ...

    def probe(self, paths: InstancePaths, spec: InstanceSpec) -> Probe:
        """Is the engine accepting queries? Must return within ~2 s and never raise."""
        ...

    def bootstrap(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """One-time setup after the first successful start (e.g. internal roles). Idempotent."""

    def adopt_copy(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Make the files under ``paths.root`` — a point-in-time copy of another
        instance's volume taken while its engine ran (crash-consistent, as after a power
        loss) — this instance's own, before its first ``configure`` and start (engine
        stopped): remove the source's pid/lock files and sockets, and whatever made the
        source a replica, a source of replicas, fenced, or archiving its change log; the
        copy then starts as a standalone primary holding the source's data and accounts
        (crash recovery at its first start). Idempotent; ``EngineError`` if the files
        are not an instance of this engine.
        """
        ...

    def apply_parameters(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Make the running engine take ``spec.parameters`` without a restart.

        Called after ``configure(paths, spec)``; only parameters whose rule has
        ``restart_required=False`` must take effect (reload, SET GLOBAL, CONFIG SET...).
        Parameters that were removed from ``spec.parameters`` return to their defaults
        where the engine allows it live. Idempotent; raises ``EngineError`` on failure.
        """


class Admin(Protocol):
    """Users, databases, grants and root inside a running engine."""

    def list_databases(self) -> list[DatabaseSpec]: ...
    def create_databases(self, dbs: list[DatabaseSpec]) -> None: ...
    def delete_database(self, name: str) -> None: ...
    def list_users(self) -> list[UserView]: ...
    def get_user(self, name: str, host: str) -> UserView: ...
    def create_users(self, users: list[UserSpec]) -> None: ...
    def delete_user(self, name: str, host: str) -> None: ...
    def update_user(self, name: str, host: str, update: UserUpdate) -> None: ...
    def list_access(self, name: str, host: str) -> list[str]: ...
    def grant_access(self, name: str, host: str, databases: list[str]) -> None: ...
    def revoke_access(self, name: str, host: str, database: str) -> None: ...
    def enable_root(self, password: str) -> str: ...
    def disable_root(self) -> None: ...
    def is_root_enabled(self) -> bool: ...


@dataclass(frozen=True)
class BackupOutcome:
    """What a backup recorded besides its bytes.

    ``positions``: the engine's log positions where the backup ends (e.g. PostgreSQL
    ``{"timeline": "1", "lsn": "0/3000100", "wal_file": "..."}``, MariaDB
    ``{"to_lsn": "...", "gtid": "..."}``); an incremental on this backup receives them as
    ``parent``, and they are shown in the manifest. Strings only.
    ``counts``: what a verification compares after restoring the backup elsewhere, e.g.
    ``{"shop.public.items": 42}`` rows per table, or keys per Redis database; ``counts``
    of the restored instance must equal them exactly.
    """

    positions: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    #: the counts are those of the backup itself (taken at the backup's consistent point),
    #: not just of the instance right after it: a verification then demands equality;
    #: otherwise writes after the backup may explain a difference, and it only reports it
    counts_exact: bool = False


class Backups(Protocol):
    """Physical backups with the engine's own tools. Nothing is staged on the host: bytes
    go straight from the tool to ``sink`` (which compresses, encrypts and uploads them)
    and from ``chain`` streams into the new data directory."""

    def backup(
        self,
        paths: InstancePaths,
        spec: InstanceSpec,
        sink: BinaryIO,
        parent: Mapping[str, str] | None = None,
    ) -> BackupOutcome:
        """Write a consistent physical backup of the running instance to ``sink``.

        ``parent`` is None for a full backup, else the ``positions`` of the backup this
        one is an incremental of (only when the catalog says ``incremental_backups``): it
        then holds only what changed since. Writes keep being served meanwhile. Any temporary
        files live on the instance's volume under ``paths.root`` and are removed before
        returning (also on failure). Raises ``EngineError`` naming the tool and its error;
        the caller then discards what reached ``sink``.
        """
        ...

    def restore(
        self,
        paths: InstancePaths,
        spec: InstanceSpec,
        chain: Sequence[BinaryIO],
        recovery: Recovery | None = None,
    ) -> None:
        """Create ``paths.data_dir`` (absent) from a full backup followed by its
        incrementals, in order; each stream is read to its end once.

        With ``recovery`` (only when the catalog says ``point_in_time_recovery``), the
        data is then rolled forward with the shipped logs to ``recovery.target``: the new
        instance holds exactly the transactions committed at or before it (to the
        engine's timestamp precision, documented by the engine). The logs the roll
        forward needs are read from ``recovery.logs`` here (they may be staged on the
        instance's volume); the roll forward itself may happen at the first start and
        ``bootstrap``, before the instance serves anyone.

        The engine is not running. A stream may raise (``IntegrityError`` for a tampered
        or truncated backup) at any read: build aside and rename into place, so that on
        any failure no data directory exists and no temporary file is left. Files end up
        owned by ``paths.os_user`` as ``prepare`` would leave them. ``configure``,
        the start and ``bootstrap`` follow as for a new instance: ``bootstrap`` must make
        the restored data manageable by this instance (its own internal accounts and
        credentials, not the source's).
        """

    def counts(self, paths: InstancePaths, spec: InstanceSpec) -> dict[str, int]:
        """The running instance's counts, in the form ``BackupOutcome.counts`` uses."""
        ...

    def check(self, paths: InstancePaths, spec: InstanceSpec) -> str:
        """Run the engine's own consistency checks on the running instance (e.g.
        ``pg_amcheck``, ``mariadb-check``, a full load of the Redis dataset); return a
        one-line summary; raise ``EngineError`` describing any damage found."""
        ...


@dataclass(frozen=True, order=True)
class LogPosition:
    """A place in an instance's change log: a log file's name and a byte offset in it.
    Names sort in log order, so positions compare as ``(name, offset)``."""

    name: str
    offset: int


@dataclass(frozen=True)
class LogFile:
    """One file of an instance's change log as the host sees it now."""

    name: str
    path: Path
    #: the first ``ready`` bytes are final (never rewritten): they may be shipped now
    ready: int
    #: the file is closed; ``ready`` is its final size
    complete: bool


class LogArchive(Protocol):
    """An instance's change log (PostgreSQL's WAL, MariaDB's binary log) for continuous
    archiving. The agent calls it about once a second for each running instance, from
    one thread per instance at a time; it ships every file's ``ready`` bytes in order.

    Contract: every transaction committed before ``position`` is called lies before the
    position it returns, and once all bytes before that position (all earlier files
    complete, this file up to the offset) are shipped, a restore to any time up to the
    call can be carried out from a backup and the shipped files.
    """

    def position(self, paths: InstancePaths, spec: InstanceSpec) -> LogPosition:
        """The end of the log's committed part now. ``EngineError`` if unreadable."""
        ...

    def files(
        self, paths: InstancePaths, spec: InstanceSpec, since: Mapping[str, str]
    ) -> list[LogFile]:
        """The log files a restore from a backup with ``positions`` ``since`` (the
        instance's oldest full backup) onwards may need, oldest first, as far as they
        can be shipped in order now. Files may be listed again once shipped."""
        ...


class LogSource(Protocol):
    """The shipped change log of one instance, as a restore reads it."""

    def names(self) -> list[str]:
        """Names of the shipped log files, in log order."""
        ...

    def open(self, name: str) -> AbstractContextManager[BinaryIO]:
        """The shipped bytes of ``name`` (for a file still being written when it was last
        shipped: the prefix shipped so far). Reads may raise ``IntegrityError``."""
        ...


@dataclass(frozen=True)
class Recovery:
    """Roll a restored backup forward to ``target`` (timezone-aware) with ``logs``."""

    target: datetime
    logs: LogSource


@dataclass(frozen=True)
class Upstream:
    """What a replica follows: its source's address and replication account."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    #: what ``Replication.open_source`` returned for this replica (e.g. a slot name)
    facts: Mapping[str, str] = field(default_factory=dict)
    #: ``BackupOutcome.positions`` of the backup the replica was restored from ("backup"
    #: seeding), empty otherwise
    seed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplicaState:
    """An instance's replication role and progress, as the engine reports it."""

    #: "primary" (accepts writes) or "replica" (follows an upstream, read-only)
    role: str
    #: a replica is connected to its upstream and receiving changes
    streaming: bool = False
    #: how far a replica's applied changes trail its upstream, seconds; None if unknown
    lag_s: float | None = None
    #: how far the instance has got in the replication stream, as an integer that grows
    #: with it (PostgreSQL: the replayed LSN; MariaDB: the GTID sequence number; Redis:
    #: the replication offset): the most advanced replica has the largest
    position: int = 0
    detail: str = ""


class Replication(Protocol):
    """Replication between instances of one engine. Methods run on the host of the
    instance they name; all are idempotent. Passwords travel in the arguments only: the
    engine keeps the upstream's password in its own private files (mode 0600, owned by
    the instance's account), never in the spec.
    """

    #: a primary (e.g. a fenced former source) follows only while stopped: the agent
    #: stops it, calls ``follow``, and starts it (PostgreSQL rewinds it with pg_rewind)
    follow_stops_primary: bool

    def open_source(
        self, paths: InstancePaths, spec: InstanceSpec, replica_id: str, user: str, password: str
    ) -> dict[str, str]:
        """On the running source: make sure the replication account ``user`` exists with
        ``password`` (replication rights only, allowed over TCP from anywhere the
        instance's access allows) and keep what replica ``replica_id`` has not received
        yet (PostgreSQL: a physical replication slot). Returns the facts the replica's
        ``Upstream.facts`` carries."""
        ...

    def close_source(self, paths: InstancePaths, spec: InstanceSpec, replica_id: str) -> None:
        """On the running source: drop what ``open_source`` kept for ``replica_id``."""
        ...

    def follow(self, paths: InstancePaths, spec: InstanceSpec, upstream: Upstream) -> bool:
        """Make the instance a read-only replica of ``upstream`` (re-pointing it if it
        followed another). Called with the engine stopped (right after a restore) or
        running. Returns True if the engine must be restarted for it to take effect
        (the agent restarts it); what it configures survives restarts, and
        ``bootstrap`` of a replica must not wait for it to stop recovering."""
        ...

    def promote(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """On the running instance: stop following and accept writes, at once, keeping
        every change received (PostgreSQL: ``pg_promote``, a new timeline). On a
        primary it only lifts a ``fence``."""
        ...

    def fence(self, paths: InstancePaths, spec: InstanceSpec) -> int:
        """On the running primary: refuse every write from now on (reads go on; sessions
        that could write are ended), persistently across restarts, and return the final
        ``ReplicaState.position``: a replica that reached it holds every committed
        change. Lifted by ``promote``; a ``follow`` that makes it a replica keeps it
        read-only."""
        ...

    def state(self, paths: InstancePaths, spec: InstanceSpec) -> ReplicaState:
        """The running instance's role and progress (within ~2 s; ``EngineError`` if
        the engine cannot be asked)."""
        ...


@dataclass(frozen=True)
class EngineCounters:
    """One reading of a running engine's activity.

    ``connections``: client sessions open now, not counting the one that read this.
    ``operations``: a cumulative count that only grows while the engine runs (it starts
    again from zero, or below its last value, when the engine restarts) of what ``kind``
    names: "transactions" (PostgreSQL commits and rollbacks), "queries" (MariaDB
    statements) or "commands" (Redis commands).
    """

    connections: int
    operations: int
    kind: ActivityKind


class Stats(Protocol):
    """Activity counters of a running instance, read about once per heartbeat."""

    def counters(self, paths: InstancePaths, spec: InstanceSpec) -> EngineCounters:
        """Read the counters (within ~2 s; ``EngineError`` if the engine cannot be
        asked). Read-only: it changes nothing in the engine but its own counters."""
        ...


class GuestLogFiles(Protocol):
    """The text of an instance's logs (``Catalog.guest_logs``), as files on its host."""

    def path(self, paths: InstancePaths, spec: InstanceSpec, name: str) -> Path:
        """The file holding log ``name``'s text written so far (it may not exist yet:
        nothing was written). It only grows, unless the engine starts it again. A log
        the engine keeps in memory only is first appended to its file here (may then
        block ~2 s; ``EngineError`` if the engine cannot be read). ``name`` is one of
        the catalog's ``guest_logs`` (``KeyError`` otherwise)."""
        ...


class AdminFactory(Protocol):
    def __call__(self, paths: InstancePaths, spec: InstanceSpec) -> Admin: ...


@dataclass(frozen=True)
class Engine:
    catalog: Catalog
    lifecycle: Lifecycle
    admin: AdminFactory
    backups: Backups
    #: None when the engine has no change log to archive (then no point-in-time restores)
    logs: LogArchive | None = None
    #: None when the engine has no replicas
    replication: Replication | None = None
    #: None when the engine reports no activity counters (``/metrics`` then shows only
    #: whether it is up)
    stats: Stats | None = None
    #: None when the engine's logs cannot be published
    guest_logs: GuestLogFiles | None = None
