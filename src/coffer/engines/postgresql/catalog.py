"""PostgreSQL facts and rules, pure: the control plane imports this module (no psycopg).

Name rule (databases and users)
    ``^[A-Za-z_][A-Za-z0-9_-]*$``, at most 63 bytes (``NAMEDATALEN - 1``). Names are used
    exactly as given (Coffer always quotes identifiers, so ``Shop`` and ``shop`` differ).
    Refused: the ``pg_`` prefix (PostgreSQL reserves it for system roles), the engine's
    own databases (``postgres``, ``template0``, ``template1``), the internal superuser
    ``postgres``, the replication role ``coffer_replicator``, ``root`` (owned by the root
    API) and SQL role keywords such as ``public``. Reserved names are compared
    case-insensitively.

Users
    PostgreSQL has no per-host users, so ``host`` must be ``"%"``; a password is required
    on create.

Parameters (configuration groups)
    Names are lower-case GUC names (``work_mem``, ``auto_explain.log_min_duration``);
    values are bools, ints, finite floats or single-line strings. Settings Coffer manages
    (ports, sockets, file locations) and settings that run commands or load code are
    refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from coffer.contracts.engine import DatabaseSpec, ParameterRule, UserSpec
from coffer.domain.guest_logs import LogDef
from coffer.engines.postgresql.guestlogs import GUEST_LOGS
from coffer.errors import BadRequest

__all__ = [
    "ANY_HOST",
    "CATALOG",
    "INTERNAL_SUPERUSER",
    "MAX_IDENTIFIER_BYTES",
    "NAME_PATTERN",
    "REPLICATION_USER",
    "ROOT_USER",
    "SYSTEM_DATABASES",
    "PostgresCatalog",
]

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
MAX_IDENTIFIER_BYTES = 63

#: superuser Coffer's agent uses over the private unix socket (never reachable over TCP).
INTERNAL_SUPERUSER = "postgres"
#: the role the root API enables and disables.
ROOT_USER = "root"
#: the role replicas stream from their source with (``replication``); ``pg_hba.conf``
#: always lets it open replication connections over TCP (scram-sha-256).
REPLICATION_USER = "coffer_replicator"
#: databases every cluster has; never listed, created or dropped through the API.
SYSTEM_DATABASES = ("postgres", "template0", "template1")

_RESERVED_DATABASES = frozenset(SYSTEM_DATABASES)
_RESERVED_USERS = frozenset(
    {
        INTERNAL_SUPERUSER,
        ROOT_USER,
        REPLICATION_USER,
        "coffer_admin",
        "public",
        "none",
        "all",
        "current_user",
        "current_role",
        "session_user",
    }
)
#: host value meaning "any host": the only one PostgreSQL can honour.
ANY_HOST = "%"

# Server-side encodings, compared after PostgreSQL's own normalisation (upper case,
# non-alphanumerics removed), plus the aliases PostgreSQL accepts for them.
_ENCODINGS = frozenset(
    {
        "UTF8",
        "UNICODE",
        "SQLASCII",
        "EUCCN",
        "EUCJP",
        "EUCJIS2004",
        "EUCKR",
        "EUCTW",
        "ISO88595",
        "ISO88596",
        "ISO88597",
        "ISO88598",
        "KOI8R",
        "KOI8U",
        "MULEINTERNAL",
        *(f"LATIN{n}" for n in range(1, 11)),
        *(f"ISO8859{n}" for n in (1, 2, 3, 4, 9, 10, 13, 14, 15, 16)),
        "WIN866",
        "WIN874",
        *(f"WIN{n}" for n in range(1250, 1259)),
    }
)
_ENCODING_TEXT = re.compile(r"[A-Za-z0-9_-]{1,32}")
_LOCALE_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9_.@-]{0,62}")

_PARAMETER_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?")
_MANAGED_PARAMETERS = frozenset(
    {
        "port",
        "listen_addresses",
        "unix_socket_directories",
        "unix_socket_group",
        "unix_socket_permissions",
        "data_directory",
        "config_file",
        "hba_file",
        "ident_file",
        "external_pid_file",
        "include",
        "include_dir",
        "include_if_exists",
        "password_encryption",
        "log_destination",
        "logging_collector",
        "fsync",
        "cluster_name",
        # continuous archiving and restores depend on these
        "wal_level",
        "archive_mode",
        "hot_standby",
        "recovery_target_action",
        # replication depends on these
        "primary_conninfo",
        "primary_slot_name",
        "recovery_target_timeline",
        "wal_log_hints",
        "max_slot_wal_keep_size",
    }
)
_UNSAFE_PARAMETERS = frozenset(
    {
        "archive_command",
        "archive_library",
        "archive_cleanup_command",
        "restore_command",
        "recovery_end_command",
        "ssl_passphrase_command",
        "shared_preload_libraries",
        "session_preload_libraries",
        "local_preload_libraries",
        "dynamic_library_path",
        "log_directory",
        "log_filename",
        "ssl_cert_file",
        "ssl_key_file",
        "ssl_ca_file",
        "ssl_crl_file",
        "ssl_crl_dir",
        "krb_server_keyfile",
        "stats_temp_directory",
    }
)
_MAX_STRING_PARAMETER = 1024


_INT_MAX = 2147483647


def _int(name: str, low: int, high: int, restart: bool, description: str) -> ParameterRule:
    return ParameterRule(
        name=name,
        type="integer",
        min=low,
        max=high,
        restart_required=restart,
        description=description,
    )


#: What configuration groups may set. Integers are in the setting's base unit.
PARAMETER_RULES: tuple[ParameterRule, ...] = (
    _int("max_connections", 10, 5000, True, "maximum concurrent connections"),
    _int("work_mem", 64, 2097151, False, "memory per sort/hash operation (kB)"),
    _int("maintenance_work_mem", 1024, 2097151, False, "memory for VACUUM, CREATE INDEX (kB)"),
    _int("log_min_duration_statement", -1, _INT_MAX, False, "log statements slower than this (ms)"),
    _int("statement_timeout", 0, _INT_MAX, False, "abort statements running longer (ms)"),
    _int("lock_timeout", 0, _INT_MAX, False, "abort lock waits longer than this (ms)"),
    _int("idle_in_transaction_session_timeout", 0, _INT_MAX, False, "end idle transactions (ms)"),
    _int("default_statistics_target", 1, 10000, False, "planner statistics detail"),
    _int("effective_io_concurrency", 0, 1000, False, "concurrent disk I/O the planner assumes"),
    _int("max_wal_size", 2, _INT_MAX, False, "WAL size that triggers a checkpoint (MB)"),
    ParameterRule(
        name="random_page_cost", type="float", min=0.0, max=1000.0, restart_required=False
    ),
    ParameterRule(name="autovacuum", type="boolean", restart_required=False),
    ParameterRule(name="track_io_timing", type="boolean", restart_required=False),
    ParameterRule(
        name="log_statement",
        type="string",
        choices=("none", "ddl", "mod", "all"),
        restart_required=False,
        description="which statements are logged",
    ),
)


class PostgresCatalog:
    """The PostgreSQL ``Catalog``: versions, name rules, memory sizing, parameter rules."""

    name: str = "postgresql"
    default_version: str = "15"
    #: versions Coffer can run; a host runs those whose binaries it has (Debian 12: 15)
    versions: tuple[str, ...] = ("15", "16")
    #: incrementals are the archived WAL since the parent (``engines.postgresql.backup``)
    incremental_backups: bool = True
    point_in_time_recovery: bool = True
    replica_seed: str | None = "backup"
    accounts_replicate: bool = True

    guest_logs: tuple[LogDef, ...] = GUEST_LOGS

    def log_start(self, positions: Mapping[str, str]) -> str | None:
        """A restore from a backup reads the shipped log from its ``wal_file`` on."""
        return positions.get("wal_file") or None

    def validate_database(self, db: DatabaseSpec) -> None:
        """Raise ``BadRequest`` naming the problem if ``db`` cannot be created."""
        self.check_database_name(db.name)
        if db.character_set is not None:
            check_encoding(db.character_set)
        if db.collate is not None:
            check_locale(db.collate)

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
        _check_identifier("database", name)
        if name.lower() in _RESERVED_DATABASES:
            raise BadRequest(f"database name {name!r} is reserved by PostgreSQL")

    def check_user_name(self, name: str) -> None:
        """Raise ``BadRequest`` unless ``name`` may be used for a user."""
        _check_identifier("user", name)
        if name.lower() in _RESERVED_USERS:
            raise BadRequest(f"user name {name!r} is reserved")

    def memory_settings(self, ram_mb: int) -> dict[str, str]:
        """Settings sized from flavor RAM; every value is non-decreasing in ``ram_mb``.

        shared_buffers ≈ 25 %, effective_cache_size ≈ 75 %, max_connections 100 up to
        1 GB then +50 per further GB up to 500, work_mem 4 MB per GB (1 to 64 MB),
        maintenance_work_mem 1/16 of RAM (16 MB to 2 GB).
        """
        if ram_mb < 1:
            raise BadRequest(f"ram_mb must be positive, got {ram_mb}")
        extra_gb = max(0, (ram_mb - 1) // 1024)
        return {
            "shared_buffers": f"{max(32, ram_mb // 4)}MB",
            "effective_cache_size": f"{max(64, ram_mb * 3 // 4)}MB",
            "max_connections": str(min(500, 100 + 50 * extra_gb)),
            "work_mem": f"{_clamp(ram_mb * 4, 1024, 65536)}kB",
            "maintenance_work_mem": f"{_clamp(ram_mb // 16, 16, 2048)}MB",
        }

    def parameter_rules(self, version: str) -> tuple[ParameterRule, ...]:
        """Configuration-group parameters (the same for every supported version)."""
        return PARAMETER_RULES

    def validate_parameters(self, parameters: Mapping[str, object]) -> None:
        """Raise ``BadRequest`` naming the first parameter Coffer would refuse to render."""
        for name, value in parameters.items():
            check_parameter(name, value)


def check_host(host: str) -> None:
    """Raise ``BadRequest`` unless ``host`` is ``"%"``: PostgreSQL roles have no host."""
    if host != ANY_HOST:
        raise BadRequest(
            f"host {host!r} is not supported: PostgreSQL users are not tied to a host, "
            f"use '{ANY_HOST}' (network access is controlled per instance)"
        )


def check_encoding(encoding: str) -> None:
    """Raise ``BadRequest`` unless ``encoding`` names a PostgreSQL server encoding."""
    if not _ENCODING_TEXT.fullmatch(encoding) or normalise_encoding(encoding) not in _ENCODINGS:
        raise BadRequest(f"character set {encoding!r} is not a PostgreSQL server encoding")


def normalise_encoding(encoding: str) -> str:
    """PostgreSQL's spelling-insensitive form: ``utf-8`` and ``UTF8`` are both ``UTF8``."""
    return re.sub(r"[^A-Za-z0-9]", "", encoding).upper()


def check_locale(locale: str) -> None:
    """Raise ``BadRequest`` unless ``locale`` looks like a locale name (``en_US.UTF-8``).

    Whether the host has that locale installed is known only to the engine.
    """
    if not _LOCALE_TEXT.fullmatch(locale):
        raise BadRequest(f"collation {locale!r} is not a valid locale name")


def check_parameter(name: str, value: object) -> None:
    """Raise ``BadRequest`` unless ``name = value`` may go into the server configuration."""
    if not _PARAMETER_NAME.fullmatch(name):
        raise BadRequest(f"parameter name {name!r} is not a valid PostgreSQL setting name")
    if name in _MANAGED_PARAMETERS:
        raise BadRequest(f"parameter {name!r} is managed by Coffer and cannot be set")
    if name in _UNSAFE_PARAMETERS:
        raise BadRequest(f"parameter {name!r} cannot be set: it runs commands or names files")
    _check_parameter_value(name, value)


def _check_parameter_value(name: str, value: object) -> None:
    if isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadRequest(f"parameter {name!r} must be a finite number")
        return
    if isinstance(value, str):
        if len(value) > _MAX_STRING_PARAMETER:
            raise BadRequest(f"parameter {name!r} is longer than {_MAX_STRING_PARAMETER}")
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
            raise BadRequest(f"parameter {name!r} contains control characters")
        return
    raise BadRequest(f"parameter {name!r} must be a boolean, a number or a string")


def _check_identifier(kind: str, name: str) -> None:
    if not name:
        raise BadRequest(f"{kind} name must not be empty")
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise BadRequest(f"{kind} name {name!r} is longer than {MAX_IDENTIFIER_BYTES} bytes")
    if not NAME_PATTERN.fullmatch(name):
        raise BadRequest(
            f"{kind} name {name!r} is invalid: use letters, digits, '_' and '-', "
            "starting with a letter or '_'"
        )
    if name.lower().startswith("pg_"):
        raise BadRequest(f"{kind} name {name!r} is invalid: the 'pg_' prefix is reserved")


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


CATALOG = PostgresCatalog()
