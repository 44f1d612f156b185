"""Users, databases, grants and root inside a running PostgreSQL (the ``Admin`` seam).

Access model: new databases revoke CONNECT and TEMPORARY from PUBLIC, so a user reaches
exactly the databases granted to it (``GRANT ALL ON DATABASE`` plus ``GRANT ALL ON SCHEMA
public`` inside it); ``list_access`` reports those explicit CONNECT grants. Root is the
``root`` role, a superuser that may log in over TCP; disabling it takes login away (the
role stays, so objects it owns survive).

Every request is validated whole before the first change. Passwords are turned into
SCRAM verifiers in this process (libpq's ``PQencryptPasswordConn``) so clear text never
travels to the server, its logs or ``pg_stat_activity``; no message carries a password.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

import psycopg

from coffer.contracts.engine import DatabaseSpec, InstanceSpec, UserSpec, UserUpdate, UserView
from coffer.engines.base import InstancePaths
from coffer.engines.postgresql import statements as q
from coffer.engines.postgresql.catalog import (
    CATALOG,
    INTERNAL_SUPERUSER,
    REPLICATION_USER,
    ROOT_USER,
    SYSTEM_DATABASES,
    check_host,
)
from coffer.engines.postgresql.connection import Connection, connect, translate_errors
from coffer.errors import BadRequest, NotFound

__all__ = ["PostgresAdmin"]

_HIDDEN_USERS = [INTERNAL_SUPERUSER, ROOT_USER, REPLICATION_USER]
_HIDDEN_DATABASES = list(SYSTEM_DATABASES)
_ROOT_PASSWORD_BYTES = 24


class PostgresAdmin:
    """The PostgreSQL ``Admin`` for one instance; each call opens its own sessions.

    ``host`` arguments must be ``"%"`` (PostgreSQL has no per-host users). Raises
    ``BadRequest`` for bad names and duplicates, ``NotFound`` for unknown users and
    databases, ``EngineError`` when PostgreSQL fails or cannot be reached.
    """

    def __init__(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        self._paths = paths
        self._spec = spec

    # databases ---------------------------------------------------------------------

    def list_databases(self) -> list[DatabaseSpec]:
        """User databases (not ``postgres`` nor the templates), by name."""
        with self._session("listing databases") as conn:
            rows = conn.execute(q.LIST_DATABASES, {"hidden": _HIDDEN_DATABASES}).fetchall()
        return [DatabaseSpec(name=n, character_set=cs, collate=co) for n, cs, co in rows]

    def create_databases(self, dbs: list[DatabaseSpec]) -> None:
        """Create all of ``dbs`` or none: databases made before a failure are dropped."""
        for db in dbs:
            CATALOG.validate_database(db)
        _require_distinct("database", [db.name for db in dbs])
        with self._session("creating databases") as conn:
            for db in dbs:
                if _database_exists(conn, db.name):
                    raise BadRequest(f"database {db.name!r} already exists")
            created: list[str] = []
            try:
                for db in dbs:
                    conn.execute(q.create_database(db))
                    created.append(db.name)
                    conn.execute(q.revoke_public_access(db.name))
            except BaseException:
                for name in created:
                    with suppress(psycopg.Error):
                        conn.execute(q.drop_database(name))
                raise

    def delete_database(self, name: str) -> None:
        """Drop database ``name``, ending its sessions first."""
        CATALOG.check_database_name(name)
        with self._session(f"deleting database {name!r}") as conn:
            _require_databases(conn, [name])
            conn.execute(q.drop_database(name))

    # users -------------------------------------------------------------------------

    def list_users(self) -> list[UserView]:
        """Roles that can log in, except the internal superuser, root and the
        replication role."""
        params = {"hidden_users": _HIDDEN_USERS, "hidden_databases": _HIDDEN_DATABASES}
        with self._session("listing users") as conn:
            rows = conn.execute(q.LIST_USERS, params).fetchall()
        return [UserView(name=name, databases=tuple(dbs)) for name, dbs in rows]

    def get_user(self, name: str, host: str) -> UserView:
        return UserView(name=name, databases=tuple(self.list_access(name, host)))

    def create_users(self, users: list[UserSpec]) -> None:
        """Create every user in one transaction, then open its databases' schemas."""
        for user in users:
            CATALOG.validate_user(user)
        _require_distinct("user", [user.name for user in users])
        with self._session("creating users") as conn:
            for user in users:
                if _role_can_login(conn, user.name) is not None:
                    raise BadRequest(f"user {user.name!r} already exists")
            _require_databases(conn, sorted({db for user in users for db in user.databases}))
            with conn.transaction():
                for user in users:
                    verifier = _verifier(conn, user.name, user.password or "")
                    conn.execute(q.create_login_role(user.name, verifier))
                    for db in user.databases:
                        conn.execute(q.grant_database(db, user.name))
        for user in users:
            self._open_schemas(user.name, user.databases)

    def delete_user(self, name: str, host: str) -> None:
        """Lock the user out, end its sessions, drop what it owns in every database, then
        drop the role. Refused (before any change) if it owns a database."""
        self._check_user_ref(name, host)
        with self._session(f"deleting user {name!r}") as conn:
            if _role_can_login(conn, name) is None:  # a half-deleted (NOLOGIN) user is found
                raise NotFound(f"user {name!r} does not exist")
            owned = [row[0] for row in conn.execute(q.DATABASES_OWNED_BY, {"name": name})]
            if owned:
                raise BadRequest(
                    f"user {name!r} owns database {owned[0]!r}; delete it or change its owner"
                )
            conn.execute(q.disable_login(name))
            conn.execute(q.TERMINATE_SESSIONS_OF, {"name": name})
            databases = _connectable_databases(conn)
        for dbname in databases:
            with self._session(f"deleting user {name!r}", dbname=dbname) as db_conn:
                db_conn.execute(q.drop_owned(name))
        with self._session(f"deleting user {name!r}") as conn:
            conn.execute(q.drop_role(name))

    def update_user(self, name: str, host: str, update: UserUpdate) -> None:
        """Rename and/or set the password in one transaction; host changes are refused."""
        self._check_user_ref(name, host)
        if update.host is not None:
            check_host(update.host)
        if update.password is not None and not update.password:
            raise BadRequest("password must not be empty")
        new_name = update.name if update.name not in (None, name) else None
        if new_name is not None:
            CATALOG.check_user_name(new_name)
        if new_name is None and update.password is None:
            raise BadRequest(f"nothing to change for user {name!r}")
        with self._session(f"updating user {name!r}") as conn:
            _require_user(conn, name)
            if new_name is not None and _role_can_login(conn, new_name) is not None:
                raise BadRequest(f"user {new_name!r} already exists")
            with conn.transaction():
                if update.password is not None:
                    conn.execute(q.alter_password(name, _verifier(conn, name, update.password)))
                if new_name is not None:
                    conn.execute(q.rename_role(name, new_name))

    # access ------------------------------------------------------------------------

    def list_access(self, name: str, host: str) -> list[str]:
        """Databases granted to the user through ``create_users``/``grant_access``."""
        self._check_user_ref(name, host)
        params = {"name": name, "hidden_databases": _HIDDEN_DATABASES}
        with self._session(f"listing access of user {name!r}") as conn:
            _require_user(conn, name)
            row = conn.execute(q.ACCESS_OF_USER, params).fetchone()
        return list(row[0]) if row else []

    def grant_access(self, name: str, host: str, databases: list[str]) -> None:
        """Grant every database in ``databases`` (all must exist). Idempotent."""
        self._check_user_ref(name, host)
        for db in databases:
            CATALOG.check_database_name(db)
        with self._session(f"granting access to user {name!r}") as conn:
            _require_user(conn, name)
            _require_databases(conn, databases)
            with conn.transaction():
                for db in databases:
                    conn.execute(q.grant_database(db, name))
        self._open_schemas(name, databases)

    def revoke_access(self, name: str, host: str, database: str) -> None:
        """Take back ``database`` from the user. Idempotent."""
        self._check_user_ref(name, host)
        CATALOG.check_database_name(database)
        with self._session(f"revoking access of user {name!r}") as conn:
            _require_user(conn, name)
            _require_databases(conn, [database])
            conn.execute(q.revoke_database(database, name))
        with self._session(f"revoking access of user {name!r}", dbname=database) as db_conn:
            db_conn.execute(q.revoke_schema(name))

    # root --------------------------------------------------------------------------

    def enable_root(self, password: str) -> str:
        """Make ``root`` a superuser that can log in with ``password`` (a random one if
        empty) and return that password."""
        secret = password or secrets.token_urlsafe(_ROOT_PASSWORD_BYTES)
        with self._session("enabling root") as conn:
            verifier = _verifier(conn, ROOT_USER, secret)
            if _role_can_login(conn, ROOT_USER) is None:
                conn.execute(q.create_login_role(ROOT_USER, verifier, superuser=True))
            else:
                conn.execute(q.alter_password(ROOT_USER, verifier, superuser=True))
        return secret

    def disable_root(self) -> None:
        """Take login, superuser and password away from ``root`` and end its sessions."""
        with self._session("disabling root") as conn:
            if not _role_can_login(conn, ROOT_USER):
                raise NotFound("root is not enabled")
            conn.execute(q.disable_login(ROOT_USER))
            conn.execute(q.TERMINATE_SESSIONS_OF, {"name": ROOT_USER})

    def is_root_enabled(self) -> bool:
        with self._session("checking root") as conn:
            return bool(_role_can_login(conn, ROOT_USER))

    # helpers -----------------------------------------------------------------------

    @contextmanager
    def _session(self, action: str, *, dbname: str = "postgres") -> Iterator[Connection]:
        with translate_errors(action), connect(self._paths, self._spec, dbname=dbname) as conn:
            yield conn

    def _open_schemas(self, role: str, databases: Iterable[str]) -> None:
        for db in databases:
            with self._session(f"granting schema public of {db!r}", dbname=db) as conn:
                conn.execute(q.grant_schema(role))

    @staticmethod
    def _check_user_ref(name: str, host: str) -> None:
        check_host(host)
        CATALOG.check_user_name(name)


def _verifier(conn: Connection, user: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of ``password``, computed client-side."""
    verifier = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256")
    return verifier.decode("ascii")


def _role_can_login(conn: Connection, name: str) -> bool | None:
    """``None`` if no role ``name`` exists, else whether it can log in."""
    row = conn.execute(q.ROLE_CAN_LOGIN, {"name": name}).fetchone()
    return None if row is None else bool(row[0])


def _require_user(conn: Connection, name: str) -> None:
    if not _role_can_login(conn, name):
        raise NotFound(f"user {name!r} does not exist")


def _database_exists(conn: Connection, name: str) -> bool:
    return conn.execute(q.DATABASE_EXISTS, {"name": name}).fetchone() is not None


def _require_databases(conn: Connection, names: Iterable[str]) -> None:
    for name in names:
        if not _database_exists(conn, name):
            raise NotFound(f"database {name!r} does not exist")


def _connectable_databases(conn: Connection) -> list[str]:
    rows = conn.execute("SELECT datname::text FROM pg_database WHERE datallowconn ORDER BY 1")
    return [row[0] for row in rows]


def _require_distinct(kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BadRequest(f"{kind} {name!r} is listed twice")
        seen.add(name)
