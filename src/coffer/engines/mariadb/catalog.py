"""MariaDB facts and rules, pure: the control plane imports this module (no PyMySQL).

Name rule (databases and users)
    ``^[A-Za-z_][A-Za-z0-9_-]*$``; databases at most 64 characters, users at most 80
    (MariaDB's own limits). Names are used exactly as given and always quoted, so
    ``Shop`` and ``shop`` differ. Refused: MariaDB's own schemas (``mysql``,
    ``information_schema``, ``performance_schema``, ``sys``) and accounts (``root``,
    ``mariadb.sys``, ``mysql``, ``PUBLIC``), Coffer's names (``coffer_admin``, and
    ``coffer_replicator``, the replication account of ``replication``) and SQL
    account keywords (``current_user``, ``current_role``, ``none``). Reserved names are
    compared case-insensitively. ``_`` is a wildcard in MariaDB's database grants; the
    engine escapes it, so granting ``my_db`` never reaches ``myXdb``.

Hosts
    Coffer runs MariaDB with ``skip_name_resolve`` (no DNS lookup per connection, no
    grants that depend on reverse DNS), so a user's host is one of: ``%`` (anywhere), an
    IPv4 address (``10.0.0.7``), an IPv4 prefix pattern (``10.0.0.%``, ``10.%``), an IPv4
    network with a netmask (``10.0.0.0/255.255.255.0``, MariaDB's network form; ``/24`` is
    not understood by MariaDB and is refused with a hint), an IPv6 address in its short
    form (``::1``), or ``localhost``, which matches only the instance's private unix
    socket. Host names are refused: they could never match.

Character sets and collations
    Character sets come from MariaDB 10.11's list (``utf8`` is its alias of
    ``utf8mb3``); the server default is ``utf8mb4``. Collations must look like MariaDB
    collation names (``utf8mb4_unicode_ci``, ``binary``); whether one exists, and fits the
    character set, is the engine's answer (a ``BadRequest`` naming it).

Parameters (configuration groups)
    Only the parameters of ``PARAMETER_RULES`` are accepted: MariaDB reads any unique
    prefix of an option and ``loose-``/``skip-``/``maximum-`` forms of every option, so a
    deny-list could never be complete. Settings Coffer manages (paths, ports, identity,
    binary log) and settings that load code or name files are refused with a message
    that says so.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping

from coffer.contracts.engine import DatabaseSpec, ParameterRule, UserSpec
from coffer.domain.guest_logs import LogDef
from coffer.engines.mariadb.guestlogs import GUEST_LOGS
from coffer.errors import BadRequest

__all__ = [
    "ANY_HOST",
    "CATALOG",
    "CHARACTER_SETS",
    "DEFAULT_CHARACTER_SET",
    "INTERNAL_ADMIN",
    "INTERNAL_ADMIN_HOST",
    "MAX_DATABASE_NAME",
    "MAX_USER_NAME",
    "MEMORY_BUDGET_PERCENT",
    "NAME_PATTERN",
    "PARAMETER_RULES",
    "REPLICATION_USER",
    "ROOT_HOST",
    "ROOT_USER",
    "SERVER_BASE_BYTES",
    "SST_USER",
    "SYSTEM_DATABASES",
    "SYSTEM_USERS",
    "MariaDBCatalog",
    "check_character_set",
    "check_collation",
    "check_host",
    "check_parameter",
    "host_matches",
    "parse_size",
    "worst_case_memory",
]

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
MAX_DATABASE_NAME = 64
MAX_USER_NAME = 80

#: The agent's account: ``root@localhost`` authenticated by ``unix_socket`` (the agent
#: runs as OS root), reachable only through the instance's private socket.
INTERNAL_ADMIN = "root"
INTERNAL_ADMIN_HOST = "localhost"
#: The account the root API enables and disables: ``root@%``, password-authenticated.
ROOT_USER = "root"
ROOT_HOST = "%"
#: The account replicas log in to their source with (``replication``): REPLICATION SLAVE
#: only, from ``%``; reserved, so no tenant can own, see, rename or delete it.
REPLICATION_USER = "coffer_replicator"
#: The account a Galera donor's ``mariabackup`` logs in with for a state transfer
#: (``galera``): ``localhost`` only, backup privileges only; reserved like the above.
SST_USER = "coffer_sst"
#: Schemas every server has; never listed, created or dropped through the API.
SYSTEM_DATABASES = ("information_schema", "mysql", "performance_schema", "sys")
#: Accounts and roles MariaDB itself owns; never listed through the API.
SYSTEM_USERS = ("root", "mariadb.sys", "mysql", "PUBLIC")

_RESERVED_DATABASES = frozenset(SYSTEM_DATABASES)
_RESERVED_USERS = frozenset(
    {
        *(user.lower() for user in SYSTEM_USERS),
        "coffer_admin",
        REPLICATION_USER,
        SST_USER,
        "current_user",
        "current_role",
        "none",
    }
)

ANY_HOST = "%"
_LOCALHOST = "localhost"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_PREFIX_PATTERN = re.compile(rf"(?:{_OCTET}\.){{1,3}}%")
_IPV4_NETMASK = re.compile(rf"((?:{_OCTET}\.){{3}}{_OCTET})/((?:{_OCTET}\.){{3}}{_OCTET})")
_CIDR = re.compile(r"[0-9A-Fa-f.:]+/[0-9]{1,3}")
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9-]+)*\.?")

DEFAULT_CHARACTER_SET = "utf8mb4"
#: MariaDB 10.11's character sets (``SHOW CHARACTER SET``) plus the ``utf8`` alias.
CHARACTER_SETS = frozenset(
    {
        "armscii8",
        "ascii",
        "big5",
        "binary",
        "cp1250",
        "cp1251",
        "cp1256",
        "cp1257",
        "cp850",
        "cp852",
        "cp866",
        "cp932",
        "dec8",
        "eucjpms",
        "euckr",
        "gb2312",
        "gbk",
        "geostd8",
        "greek",
        "hebrew",
        "hp8",
        "keybcs2",
        "koi8r",
        "koi8u",
        "latin1",
        "latin2",
        "latin5",
        "latin7",
        "macce",
        "macroman",
        "sjis",
        "swe7",
        "tis620",
        "ucs2",
        "ujis",
        "utf16",
        "utf16le",
        "utf32",
        "utf8",
        "utf8mb3",
        "utf8mb4",
    }
)
_COLLATION_TEXT = re.compile(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*")
_MAX_COLLATION = 64

# --- parameters -----------------------------------------------------------------------

_KIB = 1024
_MIB = 1024 * 1024
_GIB = 1024 * _MIB
_YEAR_S = 31536000

#: What MariaDB 10.11 accepts in ``sql_mode`` (``information_schema.SYSTEM_VARIABLES``).
SQL_MODES = frozenset(
    {
        "REAL_AS_FLOAT",
        "PIPES_AS_CONCAT",
        "ANSI_QUOTES",
        "IGNORE_SPACE",
        "IGNORE_BAD_TABLE_OPTIONS",
        "ONLY_FULL_GROUP_BY",
        "NO_UNSIGNED_SUBTRACTION",
        "NO_DIR_IN_CREATE",
        "POSTGRESQL",
        "ORACLE",
        "MSSQL",
        "DB2",
        "MAXDB",
        "NO_KEY_OPTIONS",
        "NO_TABLE_OPTIONS",
        "NO_FIELD_OPTIONS",
        "MYSQL323",
        "MYSQL40",
        "ANSI",
        "NO_AUTO_VALUE_ON_ZERO",
        "NO_BACKSLASH_ESCAPES",
        "STRICT_TRANS_TABLES",
        "STRICT_ALL_TABLES",
        "NO_ZERO_IN_DATE",
        "NO_ZERO_DATE",
        "ALLOW_INVALID_DATES",
        "ERROR_FOR_DIVISION_BY_ZERO",
        "TRADITIONAL",
        "NO_AUTO_CREATE_USER",
        "HIGH_NOT_PRECEDENCE",
        "NO_ENGINE_SUBSTITUTION",
        "PAD_CHAR_TO_FULL_LENGTH",
        "EMPTY_STRING_IS_NULL",
        "SIMULTANEOUS_ASSIGNMENT",
        "TIME_ROUND_FRACTIONAL",
    }
)
_SERVER_CHARACTER_SETS = ("utf8mb4", "utf8mb3", "utf8", "latin1", "ascii")


def _int(name: str, low: int, high: int, restart: bool, description: str) -> ParameterRule:
    return ParameterRule(
        name=name,
        type="integer",
        min=low,
        max=high,
        restart_required=restart,
        description=description,
    )


#: What configuration groups may set. Sizes are in bytes, times in seconds. Every name is
#: both an option-file key and a global variable (``SET GLOBAL <name>``).
PARAMETER_RULES: tuple[ParameterRule, ...] = (
    _int("max_connections", 10, 100000, False, "maximum concurrent client connections"),
    ParameterRule(
        name="long_query_time",
        type="float",
        min=0.0,
        max=float(_YEAR_S),
        restart_required=False,
        description="statements slower than this (s) go to the slow query log",
    ),
    ParameterRule(
        name="slow_query_log",
        type="boolean",
        restart_required=False,
        description="write slow statements to slow.log in the data directory",
    ),
    ParameterRule(
        name="log_queries_not_using_indexes",
        type="boolean",
        restart_required=False,
        description="also log statements that use no index to the slow query log",
    ),
    _int("innodb_log_file_size", 16 * _MIB, 4 * _GIB, True, "InnoDB redo log size (bytes)"),
    _int("wait_timeout", 1, _YEAR_S, False, "close idle connections after this (s)"),
    _int("interactive_timeout", 1, _YEAR_S, False, "close idle interactive connections (s)"),
    _int(
        "max_allowed_packet", _KIB, _GIB, False, "largest packet or row (bytes, a multiple of 1024)"
    ),
    _int(
        "innodb_flush_log_at_trx_commit",
        0,
        2,
        False,
        "1: flush the redo log at each commit; 0 and 2 trade durability for speed",
    ),
    _int("sort_buffer_size", 32 * _KIB, 256 * _MIB, False, "per-session sort buffer (bytes)"),
    _int("join_buffer_size", 128, 256 * _MIB, False, "per-join buffer (bytes)"),
    _int(
        "join_buffer_space_limit",
        2 * _KIB,
        4 * _GIB,
        False,
        "all join buffers of one statement together (bytes, a multiple of 2048)",
    ),
    _int("tmp_table_size", _KIB, 4 * _GIB, False, "in-memory temporary table limit (bytes)"),
    _int("max_heap_table_size", 16 * _KIB, 4 * _GIB, False, "MEMORY table limit (bytes)"),
    _int("table_open_cache", 10, 1048576, False, "open tables cached for all sessions"),
    _int("thread_cache_size", 0, 16384, False, "threads kept for reuse"),
    _int("innodb_lock_wait_timeout", 1, 100000000, False, "row lock wait before error (s)"),
    _int("lock_wait_timeout", 1, _YEAR_S, False, "metadata lock wait before error (s)"),
    _int("net_read_timeout", 1, _YEAR_S, False, "wait for more data from a client (s)"),
    _int("net_write_timeout", 1, _YEAR_S, False, "wait for a block to be written (s)"),
    _int("group_concat_max_len", 4, _GIB, False, "longest GROUP_CONCAT() result (bytes)"),
    _int("max_connect_errors", 1, 4294967295, False, "failed connects before a host is blocked"),
    ParameterRule(
        name="character_set_server",
        type="string",
        choices=_SERVER_CHARACTER_SETS,
        restart_required=False,
        description="character set of new databases that name none",
    ),
    ParameterRule(
        name="sql_mode",
        type="string",
        restart_required=False,
        description="comma-separated SQL modes, e.g. STRICT_TRANS_TABLES,NO_ZERO_DATE",
    ),
    ParameterRule(
        name="performance_schema",
        type="boolean",
        restart_required=True,
        description="collect performance_schema instrumentation (uses memory)",
    ),
)
_RULES_BY_NAME = {rule.name: rule for rule in PARAMETER_RULES}

#: Settings ``config`` writes itself; a configuration group may not change them.
_MANAGED_PARAMETERS = frozenset(
    {
        "datadir",
        "socket",
        "pid_file",
        "port",
        "bind_address",
        "skip_networking",
        "skip_name_resolve",
        "server_id",
        "log_bin",
        "log_bin_index",
        "binlog_format",
        "log_bin_trust_function_creators",
        "binlog_expire_logs_seconds",
        "expire_logs_days",
        "max_binlog_size",
        "innodb_buffer_pool_size",
        "innodb_temp_data_file_path",
        "innodb_data_file_path",
        "innodb_data_home_dir",
        "innodb_log_group_home_dir",
        "tmpdir",
        "user",
        "log_error",
        "read_only",
        "skip_grant_tables",
        "symbolic_links",
        "secure_file_priv",
        "gtid_domain_id",
        "log_slave_updates",
        "relay_log",
    }
)
#: Settings that load code, run SQL as the server or name files on the host.
_UNSAFE_PARAMETERS = frozenset(
    {
        "plugin_load",
        "plugin_load_add",
        "plugin_dir",
        "plugin_maturity",
        "init_file",
        "init_connect",
        "init_slave",
        "general_log",
        "general_log_file",
        "slow_query_log_file",
        "log_slow_query_file",
        "basedir",
        "lc_messages_dir",
        "character_sets_dir",
        "ssl_cert",
        "ssl_key",
        "ssl_ca",
        "ssl_capath",
        "ssl_crl",
        "ssl_crlpath",
        "local_infile",
        "relay_log",
        "log_tc",
        "aria_log_dir_path",
        "innodb_undo_directory",
        "innodb_tmpdir",
        "debug",
        "core_file",
    }
)
_PARAMETER_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SIZE_TEXT = re.compile(r"([0-9]+)([KMG]?)")
_SIZE_UNITS = {"": 1, "K": _KIB, "M": _MIB, "G": _GIB}
_SWITCHES = {"ON": 1, "OFF": 0, "TRUE": 1, "FALSE": 0}
_MAX_STRING_PARAMETER = 1024


# --- memory ---------------------------------------------------------------------------

#: The fraction of flavor RAM ``worst_case_memory`` of ``memory_settings`` stays within.
MEMORY_BUDGET_PERCENT = 90
#: performance_schema is on from this flavor RAM (MB) up (``memory_settings``).
_PERFORMANCE_SCHEMA_FROM_MB = 2048
#: Measured on MariaDB 10.11 (Debian 12) with every buffer at its minimum: ~25 MiB of
#: code and libraries resident plus ~20 MiB of its own heap, rounded up.
SERVER_BASE_BYTES = 48 * _MIB
#: MariaDB's defaults for what Coffer leaves alone but each connection may use.
_THREAD_STACK = 299008
_BINLOG_CACHES = 2 * 32 * _KIB  # binlog_cache_size + binlog_stmt_cache_size
#: A session's own memory besides its buffers (THD, statement arenas, network buffer):
#: measured 86 KiB idle; an information_schema query peaks at 1.2 MB, its in-memory
#: temporary table (counted as tmp_table_size) included.
_SESSION_BYTES = 512 * _KIB
#: Per table_open_cache entry and per cached definition (InnoDB's dictionary included):
#: measured ~15 and ~13 KiB for small tables; wide rows need more.
_OPEN_TABLE_BYTES = 32 * _KIB
_TABLE_DEFINITION_BYTES = 16 * _KIB
#: performance_schema's up-front allocation: 93 MiB measured at up to 150 connections,
#: 136 MiB at 500 (10.11 sizes it from max_connections and the table caches).
_PERFORMANCE_SCHEMA_BASE = 96 * _MIB
_PERFORMANCE_SCHEMA_PER_CONNECTION = 160 * _KIB
#: MariaDB's defaults, for settings a mapping given to ``worst_case_memory`` lacks.
_MEMORY_DEFAULTS: dict[str, object] = {
    "innodb_buffer_pool_size": 128 * _MIB,
    "innodb_log_buffer_size": 16 * _MIB,
    "key_buffer_size": 128 * _MIB,
    "aria_pagecache_buffer_size": 128 * _MIB,
    "aria_sort_buffer_size": 256 * _MIB,
    "myisam_sort_buffer_size": 128 * _MIB,
    "query_cache_size": _MIB,
    "table_open_cache": 2000,
    "table_definition_cache": 400,
    "thread_cache_size": 151,
    "performance_schema": False,
    "max_connections": 151,
    "tmp_table_size": 16 * _MIB,
    "max_heap_table_size": 16 * _MIB,
    "sort_buffer_size": 2 * _MIB,
    "join_buffer_size": 256 * _KIB,
    "join_buffer_space_limit": 2 * _MIB,
    "read_buffer_size": 128 * _KIB,
    "read_rnd_buffer_size": 256 * _KIB,
    "mrr_buffer_size": 256 * _KIB,
    "bulk_insert_buffer_size": 8 * _MIB,
}


class MariaDBCatalog:
    """The MariaDB ``Catalog``: versions, name rules, memory sizing, parameter rules."""

    name: str = "mariadb"
    default_version: str = "10.11"
    versions: tuple[str, ...] = ("10.11",)
    #: mariadb-backup takes incrementals by LSN (``coffer.engines.mariadb.backup``)
    incremental_backups: bool = True
    point_in_time_recovery: bool = True
    replica_seed: str | None = "backup"
    accounts_replicate: bool = True
    guest_logs: tuple[LogDef, ...] = GUEST_LOGS

    def log_start(self, positions: Mapping[str, str]) -> str | None:
        """A restore from a backup reads the shipped log from its ``binlog_file`` on."""
        return positions.get("binlog_file") or None

    def validate_database(self, db: DatabaseSpec) -> None:
        """Raise ``BadRequest`` naming the problem if ``db`` cannot be created."""
        self.check_database_name(db.name)
        if db.character_set is not None:
            check_character_set(db.character_set)
        if db.collate is not None:
            check_collation(db.collate)

    def validate_user(self, user: UserSpec) -> None:
        """Raise ``BadRequest`` naming the problem if ``user`` cannot be created.

        Names of the databases to grant are checked for shape only; whether they exist is
        the engine's business.
        """
        self.check_user_name(user.name)
        check_host(user.host)
        if not user.password:
            raise BadRequest(f"user {user.name!r} needs a non-empty password")
        for db_name in user.databases:
            self.check_database_name(db_name)

    def check_database_name(self, name: str) -> None:
        """Raise ``BadRequest`` unless ``name`` may be used for a user database."""
        _check_identifier("database", name, MAX_DATABASE_NAME)
        if name.lower() in _RESERVED_DATABASES:
            raise BadRequest(f"database name {name!r} is reserved by MariaDB")

    def check_user_name(self, name: str) -> None:
        """Raise ``BadRequest`` unless ``name`` may be used for a user."""
        _check_identifier("user", name, MAX_USER_NAME)
        if name.lower() in _RESERVED_USERS:
            raise BadRequest(f"user name {name!r} is reserved")

    def memory_settings(self, ram_mb: int) -> dict[str, str]:
        """Settings sized from flavor RAM ``R`` (MiB); every value is non-decreasing in
        ``R``, and for 256 MB <= R <= 64 GB ``worst_case_memory`` of them stays within
        90 % of ``R`` (10 % headroom under the instance's cgroup memory limit, which is
        ``R``; below 256 MB the floors of the settings may not fit).

        Global buffers:

        * innodb_buffer_pool_size (R - 96) * 9/16 in whole MiB, at least 32M (~56 % of
          RAM for large flavors; the first 96 MB go to the server itself and its caches);
          10.11 sizes its chunks itself, so any MiB count is kept exactly;
        * innodb_log_buffer_size 8 MB per GB, 2M to 16M (InnoDB allocates it twice);
          innodb_log_file_size RAM/16 rounded down to a power of two, 16M to 2G (16M is
          the template's, so small flavors start without resizing the redo log);
        * key_buffer_size 1 MB per GB, 1M to 32M (MyISAM is rarely used; system tables
          are Aria); aria_pagecache_buffer_size 16 MB per GB, 8M to 128M (system tables
          and on-disk temporary tables); aria_sort_buffer_size and
          myisam_sort_buffer_size (REPAIR/ALTER of those engines) 16 MB per GB, 4M to
          128M; query_cache_size 0 (the query cache is off);
        * table_open_cache R/2 (64 to 4000), table_definition_cache R/2 (400, MariaDB's
          minimum, to 2000), thread_cache_size R/64 (4 to 64);
        * performance_schema ON from 2 GB only: it allocates ~95-140 MiB up front
          (measured on 10.11: 93 MiB at up to 150 connections, 136 MiB at 500), a third
          of a 256 MB flavor but under 6 % from 2 GB up. Small classes of managed
          services leave it off for that reason.

        Connections: max_connections R * 100/1024 below 1 GB (at least 10), then +50 per
        further GB (pro rata) up to 500 (25 at 256 MB, 50 at 512 MB, 100 at 1 GB, 250 at
        4 GB). Per-connection buffers are fractions of the RAM per connection
        ``q = R / max_connections`` (taken before rounding, so it never decreases),
        rounded down to a power of two and clamped between a floor and MariaDB's
        default: tmp_table_size = max_heap_table_size q/16 (256K to 16M),
        sort_buffer_size and join_buffer_space_limit q/32 (128K to 2M),
        join_buffer_size q/256 (32K to 256K), read_buffer_size q/256 (16K to 128K),
        read_rnd_buffer_size and mrr_buffer_size q/128 (32K to 256K),
        bulk_insert_buffer_size q/128 (64K to 8M).

        The bound checked against 90 % of R (``worst_case_memory``): 48 MiB for the server
        itself + pool * 65/64 + 2 * log buffer + key buffer + Aria page cache + one
        Aria/MyISAM sort buffer + 48 KiB per open table and 16 KiB per definition +
        a thread stack per cached thread (+ performance_schema's 96 MiB + 160 KiB per
        connection when on) + max_connections * (thread stack + 512 KiB of session +
        binlog caches + sort + join space + read + random-read + MRR + bulk-insert
        buffers + min(tmp_table_size, max_heap_table_size)).

        Values a configuration group sets take precedence over these (``config``).
        """
        if ram_mb < 1:
            raise BadRequest(f"ram_mb must be positive, got {ram_mb}")
        per_connection = _ram_per_connection(ram_mb)

        def share(divisor: int, low: int, high: int) -> str:
            return _size_text(_clamp(_power_of_two_below(per_connection // divisor), low, high))

        def per_gb(rate: int, low: int, high: int) -> str:
            return _size_text(_clamp(_power_of_two_below(ram_mb * rate // 1024), low, high))

        heap = share(16, 256 * _KIB, 16 * _MIB)
        maintenance = per_gb(16 * _MIB, 4 * _MIB, 128 * _MIB)
        return {
            "innodb_buffer_pool_size": f"{max(32, (ram_mb - 96) * 9 // 16)}M",
            "innodb_log_file_size": f"{_clamp(_power_of_two_below(ram_mb // 16), 16, 2048)}M",
            "innodb_log_buffer_size": per_gb(8 * _MIB, 2 * _MIB, 16 * _MIB),
            "key_buffer_size": per_gb(_MIB, _MIB, 32 * _MIB),
            "aria_pagecache_buffer_size": per_gb(16 * _MIB, 8 * _MIB, 128 * _MIB),
            "aria_sort_buffer_size": maintenance,
            "myisam_sort_buffer_size": maintenance,
            "query_cache_size": "0",
            "table_open_cache": str(_clamp(ram_mb // 2, 64, 4000)),
            "table_definition_cache": str(_clamp(ram_mb // 2, 400, 2000)),
            "thread_cache_size": str(_clamp(ram_mb // 64, 4, 64)),
            "performance_schema": "ON" if ram_mb >= _PERFORMANCE_SCHEMA_FROM_MB else "OFF",
            "max_connections": str(_max_connections(ram_mb)),
            "tmp_table_size": heap,
            "max_heap_table_size": heap,
            "sort_buffer_size": share(32, 128 * _KIB, 2 * _MIB),
            "join_buffer_size": share(256, 32 * _KIB, 256 * _KIB),
            "join_buffer_space_limit": share(32, 128 * _KIB, 2 * _MIB),
            "read_buffer_size": share(256, 16 * _KIB, 128 * _KIB),
            "read_rnd_buffer_size": share(128, 32 * _KIB, 256 * _KIB),
            "mrr_buffer_size": share(128, 32 * _KIB, 256 * _KIB),
            "bulk_insert_buffer_size": share(128, 64 * _KIB, 8 * _MIB),
        }

    def parameter_rules(self, version: str) -> tuple[ParameterRule, ...]:
        """Configuration-group parameters (the same for every supported version)."""
        return PARAMETER_RULES

    def validate_parameters(self, parameters: Mapping[str, object]) -> None:
        """Raise ``BadRequest`` naming the first parameter Coffer would refuse to render."""
        for name, value in parameters.items():
            check_parameter(name, value)


def worst_case_memory(settings: Mapping[str, object]) -> int:
    """Bytes MariaDB may use at most with ``settings`` (``memory_settings`` values, or
    option values: sizes such as ``16M``, numbers, ``ON``/``OFF``, booleans; a missing
    setting counts at MariaDB's default). ``ValueError`` for a value that is none of those.

    The bound is the usual one (global buffers + max_connections x per-connection
    buffers), with measured allowances for the server itself, the table caches,
    performance_schema and each session, and conservative where MariaDB allocates per
    statement: every connection at once holds a full sort buffer, its query's join
    buffers up to join_buffer_space_limit, read, random-read, MRR and bulk-insert
    buffers and an in-memory temporary table of min(tmp_table_size,
    max_heap_table_size); one REPAIR/ALTER of an Aria or MyISAM table runs at a time.

    Not covered (no server-wide limit exists for them): network buffers grown towards
    max_allowed_packet by large rows, several temporary tables or sort buffers in one
    statement, full-text index caches, user variables, prepared statements and stored
    programs kept by sessions, replication threads.
    """
    value = _memory_values(settings)
    pool = value["innodb_buffer_pool_size"]
    server = (
        SERVER_BASE_BYTES
        + pool
        + pool // 64  # page hash and lock table, beside the pool
        + 2 * value["innodb_log_buffer_size"]  # 10.11 keeps two log buffers
        + value["key_buffer_size"]
        + value["aria_pagecache_buffer_size"]
        + value["query_cache_size"]
        + max(value["aria_sort_buffer_size"], value["myisam_sort_buffer_size"])
        + value["table_open_cache"] * (_OPEN_TABLE_BYTES + _TABLE_DEFINITION_BYTES)
        + value["table_definition_cache"] * _TABLE_DEFINITION_BYTES
        + value["thread_cache_size"] * _THREAD_STACK
    )
    connections = value["max_connections"]
    if value["performance_schema"]:
        server += _PERFORMANCE_SCHEMA_BASE + connections * _PERFORMANCE_SCHEMA_PER_CONNECTION
    per_connection = (
        _THREAD_STACK
        + _SESSION_BYTES
        + _BINLOG_CACHES
        + value["sort_buffer_size"]
        + max(value["join_buffer_size"], value["join_buffer_space_limit"])
        + value["read_buffer_size"]
        + value["read_rnd_buffer_size"]
        + value["mrr_buffer_size"]
        + value["bulk_insert_buffer_size"]
        + min(value["tmp_table_size"], value["max_heap_table_size"])
    )
    return server + connections * per_connection


def check_host(host: str) -> None:
    """Raise ``BadRequest`` unless ``host`` is a host pattern Coffer lets users have."""
    if host in (ANY_HOST, _LOCALHOST) or _IPV4_PREFIX_PATTERN.fullmatch(host):
        return
    if (netmask := _IPV4_NETMASK.fullmatch(host)) is not None:
        _check_netmask(host, netmask.group(1), netmask.group(2))
        return
    if _is_ip_address(host):
        return
    if _CIDR.fullmatch(host):
        raise BadRequest(
            f"host {host!r} uses a prefix length MariaDB does not understand: write the "
            "network with its netmask, e.g. '10.0.0.0/255.255.255.0', or a pattern such "
            "as '10.0.0.%'"
        )
    if _HOST_NAME.fullmatch(host) and len(host) <= 255:
        raise BadRequest(
            f"host {host!r} is a host name: Coffer runs MariaDB without name resolution, "
            "use an IP address, a pattern such as '10.0.0.%', or '%'"
        )
    raise BadRequest(
        f"host {host!r} is invalid: use '%', an IP address, a pattern such as "
        "'10.0.0.%', a network such as '10.0.0.0/255.255.255.0', or 'localhost'"
    )


def host_matches(pattern: str, client: str) -> bool:
    """Whether account host ``pattern`` (one ``check_host`` accepts) matches a session
    from ``client``: ``localhost`` for the unix socket, else an IP address (with
    ``skip_name_resolve``, MariaDB matches addresses, never names)."""
    if pattern == ANY_HOST:
        return True
    if pattern == _LOCALHOST or client == _LOCALHOST:
        return pattern == client
    if _IPV4_PREFIX_PATTERN.fullmatch(pattern):
        return client.startswith(pattern[:-1])
    if (netmask := _IPV4_NETMASK.fullmatch(pattern)) is not None:
        try:
            address = int(ipaddress.IPv4Address(client))
        except ValueError:
            return False
        mask = int(ipaddress.IPv4Address(netmask.group(2)))
        return address & mask == int(ipaddress.IPv4Address(netmask.group(1)))
    return pattern == client


def check_character_set(charset: str) -> None:
    """Raise ``BadRequest`` unless ``charset`` is a MariaDB character set."""
    if charset.lower() not in CHARACTER_SETS:
        raise BadRequest(f"character set {charset!r} is not a MariaDB character set")


def check_collation(collation: str) -> None:
    """Raise ``BadRequest`` unless ``collation`` looks like a collation name."""
    if len(collation) > _MAX_COLLATION or not _COLLATION_TEXT.fullmatch(collation):
        raise BadRequest(f"collation {collation!r} is not a valid collation name")


def check_parameter(name: str, value: object) -> None:
    """Raise ``BadRequest`` unless ``name = value`` may go into the server configuration."""
    if not _PARAMETER_NAME.fullmatch(name):
        raise BadRequest(f"parameter name {name!r} is not a valid MariaDB variable name")
    if name in _MANAGED_PARAMETERS:
        raise BadRequest(f"parameter {name!r} is managed by Coffer and cannot be set")
    if name in _UNSAFE_PARAMETERS:
        raise BadRequest(f"parameter {name!r} cannot be set: it loads code or names files")
    rule = _RULES_BY_NAME.get(name)
    if rule is None:
        raise BadRequest(f"parameter {name!r} is not a parameter Coffer lets MariaDB users set")
    _check_value(rule, value)


def parse_size(text: str) -> int:
    """Bytes in an option-file size such as ``140M``; ``ValueError`` if it is not one."""
    match = _SIZE_TEXT.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def _check_value(rule: ParameterRule, value: object) -> None:
    name = rule.name
    if rule.type == "boolean":
        if not (isinstance(value, int) and value in (0, 1)):  # true/false, or 0/1
            raise BadRequest(f"parameter {name!r} must be true or false")
        return
    if rule.type in ("integer", "float"):
        _check_number(rule, value)
        return
    if not isinstance(value, str):
        raise BadRequest(f"parameter {name!r} must be a string")
    if len(value) > _MAX_STRING_PARAMETER:
        raise BadRequest(f"parameter {name!r} is longer than {_MAX_STRING_PARAMETER}")
    if rule.choices is not None and value not in rule.choices:
        raise BadRequest(f"parameter {name!r} must be one of {', '.join(rule.choices)}")
    if name == "sql_mode":
        _check_sql_mode(value)


def _check_number(rule: ParameterRule, value: object) -> None:
    name = rule.name
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"parameter {name!r} must be a number")
    if rule.type == "integer" and not isinstance(value, int):
        raise BadRequest(f"parameter {name!r} must be an integer")
    if not math.isfinite(value):
        raise BadRequest(f"parameter {name!r} must be a finite number")
    if rule.min is not None and value < rule.min:
        raise BadRequest(f"parameter {name!r} must be at least {rule.min}")
    if rule.max is not None and value > rule.max:
        raise BadRequest(f"parameter {name!r} must be at most {rule.max}")


def _check_sql_mode(value: str) -> None:
    if value == "":
        return
    for mode in value.split(","):
        if mode not in SQL_MODES:
            raise BadRequest(f"parameter 'sql_mode': {mode!r} is not a MariaDB SQL mode")


def _check_netmask(host: str, address: str, mask: str) -> None:
    mask_bits = int(ipaddress.IPv4Address(mask))
    inverted = mask_bits ^ 0xFFFFFFFF
    if inverted & (inverted + 1):
        raise BadRequest(f"host {host!r} has a netmask that is not contiguous")
    if int(ipaddress.IPv4Address(address)) & inverted:
        raise BadRequest(
            f"host {host!r} has address bits outside its netmask and would match nothing"
        )


def _is_ip_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and str(address) != host:
        # MariaDB compares the client's address text; only the short form can match.
        raise BadRequest(f"host {host!r}: write the IPv6 address as {str(address)!r}")
    return True


def _check_identifier(kind: str, name: str, max_length: int) -> None:
    if not name:
        raise BadRequest(f"{kind} name must not be empty")
    if len(name) > max_length:
        raise BadRequest(f"{kind} name {name!r} is longer than {max_length} characters")
    if not NAME_PATTERN.fullmatch(name):
        raise BadRequest(
            f"{kind} name {name!r} is invalid: use letters, digits, '_' and '-', "
            "starting with a letter or '_'"
        )


def _memory_values(settings: Mapping[str, object]) -> dict[str, int]:
    values: dict[str, int] = {}
    for name, default in _MEMORY_DEFAULTS.items():
        values[name] = _option_number(name, settings.get(name, default))
    return values


def _option_number(name: str, value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        switch = _SWITCHES.get(value.upper())
        return switch if switch is not None else parse_size(value)
    raise ValueError(f"{name}: {value!r} is not a size, a number or ON/OFF")


def _max_connections(ram_mb: int) -> int:
    """``memory_settings``' max_connections: see its docstring."""
    if ram_mb <= 1024:
        return max(10, ram_mb * 100 // 1024)
    return min(500, 100 + 50 * (ram_mb - 1024) // 1024)


def _ram_per_connection(ram_mb: int) -> int:
    """Bytes of flavor RAM per connection ``_max_connections`` allows, before its
    rounding: non-decreasing in ``ram_mb``. Connections are counted in 1/1024ths."""
    if ram_mb <= 1024:
        connections = max(10 * 1024, ram_mb * 100)
    else:
        connections = min(500 * 1024, 100 * 1024 + 50 * (ram_mb - 1024))
    return ram_mb * _MIB * 1024 // connections


def _size_text(size: int) -> str:
    """``size`` bytes as an option-file size (``512K``, ``16M``), exact."""
    for unit in ("G", "M", "K"):
        if size >= _SIZE_UNITS[unit] and size % _SIZE_UNITS[unit] == 0:
            return f"{size // _SIZE_UNITS[unit]}{unit}"
    return str(size)


def _power_of_two_below(value: int) -> int:
    """The largest power of two ≤ ``value`` (1 for values below 1)."""
    return 1 << max(0, value.bit_length() - 1)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


CATALOG = MariaDBCatalog()
