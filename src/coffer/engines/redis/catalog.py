"""Redis facts and rules, pure: the control plane imports this module (no redis-py).

Users
    Trove users are Redis ACL users. Name rule: ``^[A-Za-z_][A-Za-z0-9_.-]*$``, at most
    64 characters, used exactly as given. Reserved (compared case-insensitively):
    ``default`` (Redis's unauthenticated user, kept disabled), ``root`` (owned by the root
    API) and every name starting with ``coffer`` (Coffer's internal accounts:
    ``coffer-admin``, the agent's, and ``coffer_replicator``, the account replicas
    authenticate as to their upstream). Redis users are not tied to a host, so ``host``
    must be ``"%"``; a password is required.

Databases
    Redis has no named databases (its numbered logical databases are not Trove's
    databases), so every database operation is ``NotImplementedByDatastore`` (501) and a
    user cannot be given databases.

Memory
    ``maxmemory`` is 75 % of flavor RAM, leaving room for fragmentation and the
    copy-on-write of background saves; ``maxmemory-policy`` defaults to ``noeviction``:
    a full instance refuses writes with an OOM error instead of silently dropping keys.

Backups
    Full only (an RDB snapshot and the ACL users, ``coffer.engines.redis.backup``):
    ``incremental_backups`` is False, so the control plane answers incremental requests
    with 501.

Replication
    ``replica_seed`` is "engine": a replica starts empty and Redis copies the dataset
    itself once it follows (``coffer.engines.redis.replication``). ACL users are not
    replicated: each instance keeps its own.

Parameters (configuration groups)
    Only the parameters in ``PARAMETER_RULES`` may be set; everything else (ports,
    sockets, files, persistence, ACL, modules, renamed commands, replication) is managed
    by Coffer. Bounds are Redis 7.0's own, narrowed where Redis accepts values it clamps
    or cannot use safely (``hz`` 1-500, ``maxmemory-samples`` ≤ 64, ``maxclients`` ≤
    10000, ``databases`` ≤ 1024).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from coffer.contracts.engine import DatabaseSpec, ParameterRule, UserSpec
from coffer.domain.guest_logs import LogDef
from coffer.engines.redis.guestlogs import GUEST_LOGS
from coffer.errors import BadRequest, NotImplementedByDatastore

__all__ = [
    "ADMIN_USER",
    "ANY_HOST",
    "CATALOG",
    "DEFAULT_USER",
    "EVICTION_POLICIES",
    "MAX_NAME_LENGTH",
    "NAME_PATTERN",
    "NO_DATABASES",
    "PARAMETER_DEFAULTS",
    "PARAMETER_RULES",
    "REPLICATION_USER",
    "ROOT_USER",
    "RedisCatalog",
    "check_host",
    "check_parameter",
    "is_internal_user",
    "is_reserved_user",
]

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
MAX_NAME_LENGTH = 64

#: ACL user the agent authenticates as, over the private unix socket only.
ADMIN_USER = "coffer-admin"
#: ACL user replicas authenticate as to their upstream (replication commands only).
REPLICATION_USER = "coffer_replicator"
#: the ACL user the root API enables and disables.
ROOT_USER = "root"
#: Redis's built-in user for unauthenticated connections; always disabled.
DEFAULT_USER = "default"
_RESERVED_PREFIX = "coffer"
_RESERVED_USERS = frozenset({DEFAULT_USER, ROOT_USER})

#: host value meaning "any host": the only one Redis can honour.
ANY_HOST = "%"

NO_DATABASES = (
    "Redis has no databases: separate applications by key prefixes or use separate instances"
)

EVICTION_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
#: event classes ``notify-keyspace-events`` accepts (Redis 7.0).
_KEYSPACE_EVENT_CLASSES = frozenset("KEg$lshzxentdmA")

_INT_MAX = 2**31 - 1
_LLONG_MAX = 2**63 - 1
_RAM_PERCENT = 75
_CLIENTS_PER_GB = 1000
_MAX_CLIENTS = 10000


def _int(
    name: str, low: int, high: int, description: str, *, restart: bool = False
) -> ParameterRule:
    return ParameterRule(
        name=name,
        type="integer",
        min=low,
        max=high,
        restart_required=restart,
        description=description,
    )


def _bool(name: str, description: str) -> ParameterRule:
    return ParameterRule(name=name, type="boolean", restart_required=False, description=description)


def _choice(name: str, choices: tuple[str, ...], description: str) -> ParameterRule:
    return ParameterRule(
        name=name, type="string", choices=choices, restart_required=False, description=description
    )


#: What configuration groups may set.
PARAMETER_RULES: tuple[ParameterRule, ...] = (
    _choice("maxmemory-policy", EVICTION_POLICIES, "what to do when maxmemory is reached"),
    _int("maxmemory-samples", 1, 64, "keys sampled per eviction decision"),
    _int("maxmemory-eviction-tenacity", 0, 100, "effort spent evicting per command"),
    _int("timeout", 0, _INT_MAX, "close client connections idle this long (s, 0 = never)"),
    _int("tcp-keepalive", 0, _INT_MAX, "TCP keepalive interval for clients (s, 0 = off)"),
    ParameterRule(
        name="notify-keyspace-events",
        type="string",
        restart_required=False,
        description="keyspace notification classes, a subset of 'KEg$lshzxentdmA' ('' = off)",
    ),
    _int("slowlog-log-slower-than", -1, _LLONG_MAX, "log commands slower than this (µs)"),
    _int("slowlog-max-len", 0, _LLONG_MAX, "entries kept in the slow log"),
    _int("latency-monitor-threshold", 0, _LLONG_MAX, "record events slower than this (ms)"),
    _int("hz", 1, 500, "background task frequency (per second)"),
    _int("active-expire-effort", 1, 10, "effort spent expiring keys in the background"),
    _choice("appendfsync", ("everysec", "always", "no"), "when the append-only file is fsynced"),
    _int("maxclients", 1, _MAX_CLIENTS, "maximum simultaneous client connections"),
    _int("databases", 1, 1024, "number of numbered logical databases", restart=True),
    _bool("lazyfree-lazy-eviction", "free evicted keys in a background thread"),
    _bool("lazyfree-lazy-expire", "free expired keys in a background thread"),
    _bool("lazyfree-lazy-user-del", "make DEL behave like UNLINK"),
    _bool("lazyfree-lazy-user-flush", "make FLUSHDB/FLUSHALL asynchronous by default"),
    _bool("activerehashing", "rehash the main dictionaries incrementally"),
)
_RULES_BY_NAME = {rule.name: rule for rule in PARAMETER_RULES}

#: The value of every rule when no configuration group sets it: Redis 7.0's defaults
#: (``maxclients`` and ``maxmemory-policy`` come from ``memory_settings``).
PARAMETER_DEFAULTS: Mapping[str, bool | int | str] = {
    "maxmemory-policy": "noeviction",
    "maxmemory-samples": 5,
    "maxmemory-eviction-tenacity": 10,
    "timeout": 0,
    "tcp-keepalive": 300,
    "notify-keyspace-events": "",
    "slowlog-log-slower-than": 10000,
    "slowlog-max-len": 128,
    "latency-monitor-threshold": 0,
    "hz": 10,
    "active-expire-effort": 1,
    "appendfsync": "everysec",
    "maxclients": 10000,
    "databases": 16,
    "lazyfree-lazy-eviction": False,
    "lazyfree-lazy-expire": False,
    "lazyfree-lazy-user-del": False,
    "lazyfree-lazy-user-flush": False,
    "activerehashing": True,
}

#: Settings Coffer renders itself; named in refusals so the message says why.
_MANAGED_PARAMETERS = frozenset(
    {
        "port",
        "bind",
        "unixsocket",
        "unixsocketperm",
        "dir",
        "dbfilename",
        "appendonly",
        "appendfilename",
        "appenddirname",
        "save",
        "logfile",
        "pidfile",
        "daemonize",
        "supervised",
        "include",
        "aclfile",
        "requirepass",
        "user",
        "rename-command",
        "loadmodule",
        "maxmemory",
        "protected-mode",
        "enable-protected-configs",
        "enable-debug-command",
        "enable-module-command",
        "replicaof",
        "slaveof",
        "masterauth",
        "masteruser",
        "replica-read-only",
        "repl-diskless-sync-delay",
        "repl-ping-replica-period",
        "min-replicas-to-write",
    }
)


class RedisCatalog:
    """The Redis ``Catalog``: versions, name rules, memory sizing, parameter rules."""

    name: str = "redis"
    default_version: str = "7.0"
    versions: tuple[str, ...] = ("7.0",)
    #: full RDB snapshots only: Redis has no notion of an incremental snapshot
    incremental_backups: bool = False
    point_in_time_recovery: bool = False
    replica_seed: str | None = "engine"
    accounts_replicate: bool = False
    guest_logs: tuple[LogDef, ...] = GUEST_LOGS

    def log_start(self, positions: Mapping[str, str]) -> str | None:
        return None  # no change log

    def validate_database(self, db: DatabaseSpec) -> None:
        """Always ``NotImplementedByDatastore``: Redis has no databases."""
        raise NotImplementedByDatastore(NO_DATABASES)

    def validate_user(self, user: UserSpec) -> None:
        """Raise ``BadRequest`` naming the problem if ``user`` cannot be created, and
        ``NotImplementedByDatastore`` if it asks for databases."""
        self.check_user_name(user.name)
        check_host(user.host)
        if not user.password:
            raise BadRequest(f"user {user.name!r} needs a non-empty password")
        if user.databases:
            raise NotImplementedByDatastore(
                f"user {user.name!r} cannot be given databases: {NO_DATABASES}"
            )

    def check_user_name(self, name: str) -> None:
        """Raise ``BadRequest`` unless ``name`` may be used for a tenant's ACL user."""
        if not name:
            raise BadRequest("user name must not be empty")
        if len(name) > MAX_NAME_LENGTH:
            raise BadRequest(f"user name {name!r} is longer than {MAX_NAME_LENGTH} characters")
        if not NAME_PATTERN.fullmatch(name):
            raise BadRequest(
                f"user name {name!r} is invalid: use letters, digits, '_', '.' and '-', "
                "starting with a letter or '_'"
            )
        if is_reserved_user(name):
            raise BadRequest(f"user name {name!r} is reserved")

    def memory_settings(self, ram_mb: int) -> dict[str, str]:
        """Settings sized from flavor RAM; numbers are non-decreasing in ``ram_mb``.

        ``maxmemory`` (bytes) is 75 % of RAM; ``maxclients`` is 1000 per started GB, at
        most 10000; ``maxmemory-policy`` is ``noeviction`` (never drop data silently).
        """
        if ram_mb < 1:
            raise BadRequest(f"ram_mb must be positive, got {ram_mb}")
        maxmemory = ram_mb * _RAM_PERCENT // 100 * 1024 * 1024
        clients = min(_MAX_CLIENTS, _CLIENTS_PER_GB * math.ceil(ram_mb / 1024))
        return {
            "maxmemory": str(maxmemory),
            "maxmemory-policy": "noeviction",
            "maxclients": str(clients),
        }

    def parameter_rules(self, version: str) -> tuple[ParameterRule, ...]:
        """Configuration-group parameters (the same for every supported version)."""
        return PARAMETER_RULES

    def validate_parameters(self, parameters: Mapping[str, object]) -> None:
        """Raise ``BadRequest`` naming the first parameter Coffer would refuse to render."""
        for name, value in parameters.items():
            check_parameter(name, value)


def is_reserved_user(name: str) -> bool:
    """Whether ``name`` belongs to Redis or Coffer (never listed, created or deleted)."""
    lowered = name.lower()
    return lowered in _RESERVED_USERS or lowered.startswith(_RESERVED_PREFIX)


def is_internal_user(name: str) -> bool:
    """Whether ``name`` is one of Coffer's own accounts (reserved, never in a backup)."""
    return name.lower().startswith(_RESERVED_PREFIX)


def check_host(host: str) -> None:
    """Raise ``BadRequest`` unless ``host`` is ``"%"``: Redis ACL users have no host."""
    if host != ANY_HOST:
        raise BadRequest(
            f"host {host!r} is not supported: Redis users are not tied to a host, "
            f"use '{ANY_HOST}' (network access is controlled per instance)"
        )


def check_parameter(name: str, value: object) -> None:
    """Raise ``BadRequest`` unless ``name = value`` obeys its rule in ``PARAMETER_RULES``.

    The control plane checks values against the rules already; this repeats the check
    (and the charset of ``notify-keyspace-events``, which a rule cannot express) because
    the value is written into the server's configuration file.
    """
    rule = _RULES_BY_NAME.get(name)
    if rule is None:
        if name in _MANAGED_PARAMETERS:
            raise BadRequest(f"parameter {name!r} is managed by Coffer and cannot be set")
        raise BadRequest(f"parameter {name!r} is not a Redis parameter configuration groups set")
    if rule.type == "boolean":
        if not isinstance(value, bool):
            raise BadRequest(f"parameter {name!r} must be a boolean")
    elif rule.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"parameter {name!r} must be an integer")
        if (rule.min is not None and value < rule.min) or (
            rule.max is not None and value > rule.max
        ):
            raise BadRequest(f"parameter {name!r} must be between {rule.min} and {rule.max}")
    else:
        _check_string(rule, value)


def _check_string(rule: ParameterRule, value: object) -> None:
    if not isinstance(value, str):
        raise BadRequest(f"parameter {rule.name!r} must be a string")
    if rule.choices is not None and value not in rule.choices:
        raise BadRequest(f"parameter {rule.name!r} must be one of: {', '.join(rule.choices)}")
    if rule.name == "notify-keyspace-events" and not set(value) <= _KEYSPACE_EVENT_CLASSES:
        raise BadRequest(
            f"parameter {rule.name!r} may only contain the event classes 'KEg$lshzxentdmA'"
        )


CATALOG = RedisCatalog()
