"""SQL Coffer sends to PostgreSQL, composed with ``psycopg.sql`` (pure, no I/O).

Identifiers always go through ``sql.Identifier`` and values through ``sql.Literal`` or
query parameters; nothing is formatted into SQL text by hand. Passwords are never
composed here: callers pass a SCRAM verifier computed client-side.
"""

from __future__ import annotations

from psycopg import sql

from coffer.contracts.engine import DatabaseSpec
from coffer.engines.postgresql.catalog import normalise_encoding

__all__ = [
    "ACCESS_OF_USER",
    "DATABASES_OWNED_BY",
    "DATABASE_EXISTS",
    "LIST_DATABASES",
    "LIST_USERS",
    "ROLE_CAN_LOGIN",
    "TERMINATE_SESSIONS_OF",
    "alter_password",
    "alter_replication_role",
    "create_database",
    "create_login_role",
    "create_replication_role",
    "disable_login",
    "drop_database",
    "drop_owned",
    "drop_role",
    "grant_database",
    "grant_rewind_reads",
    "grant_schema",
    "rename_role",
    "revoke_database",
    "revoke_public_access",
    "revoke_schema",
]

#: params: ``hidden`` (text[]) — databases never shown.
LIST_DATABASES = sql.SQL(
    "SELECT datname::text, pg_encoding_to_char(encoding)::text, datcollate::text"
    " FROM pg_database WHERE datname::text <> ALL(%(hidden)s) ORDER BY datname"
)
#: params: ``name``.
DATABASE_EXISTS = sql.SQL("SELECT 1 FROM pg_database WHERE datname::text = %(name)s")
#: params: ``name``. One row (``rolcanlogin``) if the role exists.
ROLE_CAN_LOGIN = sql.SQL("SELECT rolcanlogin FROM pg_roles WHERE rolname::text = %(name)s")
#: params: ``name``.
DATABASES_OWNED_BY = sql.SQL(
    "SELECT d.datname::text FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba"
    " WHERE r.rolname::text = %(name)s ORDER BY d.datname"
)
#: params: ``name``. Waits up to 5 s for each session to end.
TERMINATE_SESSIONS_OF = sql.SQL(
    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
    " WHERE usename::text = %(name)s AND pid <> pg_backend_pid()"
)

# Databases a role was granted CONNECT on explicitly (as ``grant_database`` does).
_ACCESS = (
    "ARRAY(SELECT d.datname::text FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a"
    " WHERE a.grantee = r.oid AND a.privilege_type = 'CONNECT'"
    " AND d.datname::text <> ALL(%(hidden_databases)s) ORDER BY d.datname)"
)
#: params: ``hidden_users``, ``hidden_databases`` (text[]). Rows: name, databases.
LIST_USERS = sql.SQL(
    "SELECT r.rolname::text, " + _ACCESS + " FROM pg_roles r"
    " WHERE r.rolcanlogin AND r.rolname::text <> ALL(%(hidden_users)s)"
    " AND r.rolname::text NOT LIKE 'pg\\_%%' ORDER BY r.rolname"
)
#: params: ``name``, ``hidden_databases``. One row (databases) if the role exists.
ACCESS_OF_USER = sql.SQL("SELECT " + _ACCESS + " FROM pg_roles r WHERE r.rolname::text = %(name)s")


def create_database(db: DatabaseSpec) -> sql.Composed:
    """``CREATE DATABASE``; from ``template0`` with ``ENCODING``/``LOCALE`` when the spec
    names a character set or collation (a non-UTF8 encoding without a collation gets
    locale ``C``, the only one compatible with every encoding)."""
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.name))
    if db.character_set is None and db.collate is None:
        return statement
    options: list[sql.Composable] = [sql.SQL("TEMPLATE template0")]
    if db.character_set is not None:
        options.append(sql.SQL("ENCODING {}").format(sql.Literal(db.character_set)))
    locale = db.collate
    if locale is None and normalise_encoding(db.character_set or "UTF8") not in {"UTF8", "UNICODE"}:
        locale = "C"
    if locale is not None:
        options.append(sql.SQL("LOCALE {}").format(sql.Literal(locale)))
    return sql.SQL(" ").join([statement, sql.SQL("WITH"), *options])


def revoke_public_access(database: str) -> sql.Composed:
    """Only explicit grantees (and superusers) may connect to ``database``."""
    return sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
        sql.Identifier(database)
    )


def drop_database(database: str) -> sql.Composed:
    """Drop ``database``, terminating its sessions first."""
    return sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database))


def create_login_role(name: str, verifier: str, *, superuser: bool = False) -> sql.Composed:
    """``CREATE ROLE ... LOGIN PASSWORD <verifier>``."""
    attributes = sql.SQL("SUPERUSER LOGIN" if superuser else "LOGIN")
    return sql.SQL("CREATE ROLE {} WITH {} PASSWORD {}").format(
        sql.Identifier(name), attributes, sql.Literal(verifier)
    )


def alter_password(name: str, verifier: str, *, superuser: bool = False) -> sql.Composed:
    """Set the password (and let the role log in, as superuser if asked)."""
    attributes = sql.SQL("SUPERUSER LOGIN" if superuser else "LOGIN")
    return sql.SQL("ALTER ROLE {} WITH {} PASSWORD {}").format(
        sql.Identifier(name), attributes, sql.Literal(verifier)
    )


def grant_database(database: str, role: str) -> sql.Composed:
    """CONNECT, CREATE and TEMPORARY on ``database``."""
    return sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(
        sql.Identifier(database), sql.Identifier(role)
    )


def revoke_database(database: str, role: str) -> sql.Composed:
    return sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(
        sql.Identifier(database), sql.Identifier(role)
    )


def grant_schema(role: str) -> sql.Composed:
    """USAGE and CREATE on ``public`` of the current database (PostgreSQL 15 no longer
    lets PUBLIC create there)."""
    return sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(role))


def revoke_schema(role: str) -> sql.Composed:
    return sql.SQL("REVOKE ALL ON SCHEMA public FROM {}").format(sql.Identifier(role))


def rename_role(name: str, new_name: str) -> sql.Composed:
    return sql.SQL("ALTER ROLE {} RENAME TO {}").format(
        sql.Identifier(name), sql.Identifier(new_name)
    )


def disable_login(name: str) -> sql.Composed:
    """Take away login, superuser and password (used to lock a role out)."""
    return sql.SQL("ALTER ROLE {} WITH NOLOGIN NOSUPERUSER PASSWORD NULL").format(
        sql.Identifier(name)
    )


def drop_owned(role: str) -> sql.Composed:
    """Drop what ``role`` owns in the current database and revoke its grants there."""
    return sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role))


def drop_role(role: str) -> sql.Composed:
    return sql.SQL("DROP ROLE {}").format(sql.Identifier(role))


_REPLICATION_ROLE = "LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"


def create_replication_role(name: str, verifier: str) -> sql.Composed:
    """A role that may log in and open replication connections, and nothing more."""
    return sql.SQL("CREATE ROLE {} WITH " + _REPLICATION_ROLE + " PASSWORD {}").format(
        sql.Identifier(name), sql.Literal(verifier)
    )


def alter_replication_role(name: str, verifier: str) -> sql.Composed:
    """Reset an existing role to what ``create_replication_role`` makes, with this password."""
    return sql.SQL("ALTER ROLE {} WITH " + _REPLICATION_ROLE + " PASSWORD {}").format(
        sql.Identifier(name), sql.Literal(verifier)
    )


def grant_rewind_reads(role: str) -> sql.Composed:
    """The functions ``pg_rewind`` calls on its source, for a role that is no superuser
    (they read the data directory's files: no more than replication streams anyway)."""
    return sql.SQL(
        "GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean),"
        " pg_catalog.pg_stat_file(text, boolean), pg_catalog.pg_read_binary_file(text),"
        " pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO {}"
    ).format(sql.Identifier(role))
