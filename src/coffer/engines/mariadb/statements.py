"""SQL Coffer sends to MariaDB, as text plus PyMySQL parameters (pure, no I/O).

Values — account names, hosts, password hashes, setting values — always travel as
query parameters (``%s``). Identifiers cannot: they are validated by the catalog first
and then quoted here with backticks (a backtick doubled). In database grants ``_`` and
``%`` are wildcards, so database names are escaped as grant patterns as well
(``my_db`` → ``my\\_db``), and read back from ``mysql.db`` the same way.

Passwords never reach the server in clear: MariaDB writes ``CREATE USER ... IDENTIFIED
BY '<password>'`` verbatim into its general log, slow log and binary log, so Coffer
sends the ``mysql_native_password`` hash (``IDENTIFIED BY PASSWORD '*...'``) instead.
"""

from __future__ import annotations

import hashlib
import re

from coffer.contracts.engine import DatabaseSpec
from coffer.engines.mariadb.catalog import REPLICATION_USER, SST_USER

__all__ = [
    "ACCOUNTS_NAMED",
    "DATABASE_EXISTS",
    "GRANTS_OF_USER",
    "GRANTS_ON_PATTERN",
    "LIST_DATABASES",
    "LIST_GRANTS",
    "LIST_USERS",
    "ROOT_PRIVILEGES",
    "SESSIONS",
    "SESSIONS_IN_DATABASE",
    "USER_EXISTS",
    "alter_password",
    "create_database",
    "create_user",
    "drop_database",
    "drop_user",
    "grant_database",
    "grant_pattern",
    "grant_root",
    "kill",
    "password_hash",
    "quote_identifier",
    "rename_user",
    "revoke_all",
    "revoke_database",
    "set_global",
    "set_global_default",
    "socket_authenticated",
    "unescape_grant_pattern",
]

_HIDDEN_DATABASES = "('information_schema', 'mysql', 'performance_schema', 'sys')"
#: Rows: name, character set, collation.
LIST_DATABASES = (
    "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME"
    " FROM information_schema.SCHEMATA"
    f" WHERE SCHEMA_NAME NOT IN {_HIDDEN_DATABASES} ORDER BY SCHEMA_NAME"
)
#: params: name.
DATABASE_EXISTS = "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s"
#: params: user, host.
USER_EXISTS = "SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s"
#: params: user. Rows: host, of every account with that name.
ACCOUNTS_NAMED = "SELECT Host FROM mysql.user WHERE User = %s AND is_role = 'N'"
#: Rows: user, host, of accounts that are not roles, not anonymous, not MariaDB's own,
#: not the replication or state-transfer account.
LIST_USERS = (
    "SELECT User, Host FROM mysql.user"
    " WHERE is_role = 'N' AND User <> ''"
    f" AND User NOT IN ('root', 'mariadb.sys', 'mysql', '{REPLICATION_USER}', '{SST_USER}')"
    " ORDER BY User, Host"
)
#: Rows: user, host, database grant pattern.
LIST_GRANTS = "SELECT User, Host, Db FROM mysql.db"
#: params: user, host. Rows: database grant pattern.
GRANTS_OF_USER = "SELECT Db FROM mysql.db WHERE User = %s AND Host = %s"
#: params: grant pattern. Rows: user, host.
GRANTS_ON_PATTERN = "SELECT User, Host FROM mysql.db WHERE Db = %s"
#: Rows: id, user, client host (``ip:port`` or ``localhost``).
SESSIONS = "SELECT ID, USER, HOST FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()"
#: params: database. Rows: id.
SESSIONS_IN_DATABASE = (
    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()"
)

#: What ``root@%`` (the root API) gets on ``*.*``, WITH GRANT OPTION: everything a
#: tenant needs to own its data and accounts, and nothing that overrides ``read_only``,
#: touches replication or the binary log, reads or writes server files, stops the
#: server, or acts as another account: no SUPER, READ_ONLY ADMIN, BINLOG ADMIN, BINLOG
#: REPLAY, REPLICATION SLAVE/MASTER ADMIN/SLAVE ADMIN, FILE, SHUTDOWN, SET USER,
#: CONNECTION ADMIN, FEDERATED ADMIN, CREATE TABLESPACE.
ROOT_PRIVILEGES = (
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "RELOAD",
    "PROCESS",
    "REFERENCES",
    "INDEX",
    "ALTER",
    "SHOW DATABASES",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "EXECUTE",
    "CREATE VIEW",
    "SHOW VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "CREATE USER",
    "EVENT",
    "TRIGGER",
    "DELETE HISTORY",
    "BINLOG MONITOR",
    "SLAVE MONITOR",
)

_WILDCARDS = re.compile(r"\\(.)|([%_])")

Statement = tuple[str, tuple[object, ...]]


def quote_identifier(name: str) -> str:
    """``name`` as a backtick-quoted identifier (callers validate it first)."""
    return "`" + name.replace("`", "``") + "`"


def grant_pattern(database: str) -> str:
    """The ``mysql.db`` pattern that names exactly ``database`` (wildcards escaped)."""
    return database.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")


def unescape_grant_pattern(pattern: str) -> str | None:
    """The database a ``mysql.db`` pattern names, or ``None`` if it is a real wildcard."""
    exact = True

    def unescape(match: re.Match[str]) -> str:
        nonlocal exact
        if match.group(1) is not None:
            return match.group(1)
        exact = False
        return match.group(2)

    name = _WILDCARDS.sub(unescape, pattern)
    return name if exact else None


def password_hash(password: str) -> str:
    """The ``mysql_native_password`` hash MariaDB stores: ``*`` + SHA1(SHA1(password))."""
    inner = hashlib.sha1(password.encode("utf-8")).digest()
    return "*" + hashlib.sha1(inner).hexdigest().upper()


def create_database(db: DatabaseSpec) -> str:
    """``CREATE DATABASE`` with the spec's character set and collation, if any."""
    parts = [f"CREATE DATABASE {quote_identifier(db.name)}"]
    if db.character_set is not None:
        parts.append(f"CHARACTER SET {quote_identifier(db.character_set)}")
    if db.collate is not None:
        parts.append(f"COLLATE {quote_identifier(db.collate)}")
    return " ".join(parts)


def drop_database(database: str) -> str:
    return f"DROP DATABASE {quote_identifier(database)}"


def create_user(name: str, host: str, password: str) -> Statement:
    return "CREATE USER %s@%s IDENTIFIED BY PASSWORD %s", (name, host, password_hash(password))


def alter_password(name: str, host: str, password: str) -> Statement:
    return "ALTER USER %s@%s IDENTIFIED BY PASSWORD %s", (name, host, password_hash(password))


def socket_authenticated(name: str, host: str) -> Statement:
    """Let the account in only through ``unix_socket`` (OS account of the same name)."""
    return "ALTER USER %s@%s IDENTIFIED VIA unix_socket", (name, host)


def drop_user(name: str, host: str) -> Statement:
    return "DROP USER %s@%s", (name, host)


def rename_user(name: str, host: str, new_name: str, new_host: str) -> Statement:
    return "RENAME USER %s@%s TO %s@%s", (name, host, new_name, new_host)


def grant_database(database: str, name: str, host: str) -> Statement:
    """Every database-level privilege on ``database`` (never a global one)."""
    target = quote_identifier(grant_pattern(database))
    return f"GRANT ALL PRIVILEGES ON {target}.* TO %s@%s", (name, host)


def revoke_database(database: str, name: str, host: str) -> Statement:
    target = quote_identifier(grant_pattern(database))
    return f"REVOKE ALL PRIVILEGES ON {target}.* FROM %s@%s", (name, host)


def revoke_all(name: str, host: str) -> Statement:
    """Take every privilege and the grant option away (the account stays)."""
    return "REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@%s", (name, host)


def grant_root(name: str, host: str) -> Statement:
    privileges = ", ".join(ROOT_PRIVILEGES)
    return f"GRANT {privileges} ON *.* TO %s@%s WITH GRANT OPTION", (name, host)


def kill(session_id: int) -> Statement:
    return "KILL CONNECTION %s", (int(session_id),)


def set_global(name: str, value: bool | int | float | str) -> Statement:
    """``SET GLOBAL`` of a catalog parameter (``name`` comes from the rules, not users)."""
    literal: object = int(value) if isinstance(value, bool) else value
    return f"SET GLOBAL {_variable(name)} = %s", (literal,)


def set_global_default(name: str) -> str:
    return f"SET GLOBAL {_variable(name)} = DEFAULT"


def _variable(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"{name!r} is not a variable name")
    return name
