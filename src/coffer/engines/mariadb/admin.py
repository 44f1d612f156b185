"""Users, databases, grants and root inside a running MariaDB (the ``Admin`` seam).

Access model: a user is a MariaDB account ``'name'@'host'`` and reaches exactly the
databases granted to it (``GRANT ALL PRIVILEGES ON `db`.*``, never a global privilege);
``list_access`` reports those database grants. Deleting a database revokes every grant
on it first, so a later database of the same name is not opened to old users.

Root is the account ``root@%``: enabling creates it (or sets its password) with the
privileges of ``statements.ROOT_PRIVILEGES`` on ``*.*`` WITH GRANT OPTION — everything
but SUPER and the other privileges that override ``read_only``, touch replication or
binary logs, read or write server files or stop the server. Disabling drops it and ends
its sessions. The agent's own ``root@localhost`` (unix socket only) is a different
account that the users API can neither see nor name.

Every request is validated whole before the first change; a failure part-way through a
create undoes what that request created. No message carries a password, and passwords
reach the server only as hashes (see ``statements``).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

import pymysql  # type: ignore[import-untyped,unused-ignore]

from coffer.contracts.engine import DatabaseSpec, InstanceSpec, UserSpec, UserUpdate, UserView
from coffer.engines.base import InstancePaths
from coffer.engines.mariadb import statements as q
from coffer.engines.mariadb.catalog import (
    CATALOG,
    ROOT_HOST,
    ROOT_USER,
    SYSTEM_DATABASES,
    check_host,
    host_matches,
)
from coffer.engines.mariadb.connection import Session, connect, error_code, translate_errors
from coffer.errors import BadRequest, NotFound

__all__ = ["MariaDBAdmin"]

_ROOT_PASSWORD_BYTES = 24
_NO_SUCH_GRANT = 1141
_UNKNOWN_THREAD = 1094


class MariaDBAdmin:
    """The MariaDB ``Admin`` for one instance; each call opens its own session.

    Raises ``BadRequest`` for bad names and duplicates, ``NotFound`` for unknown users
    and databases, ``EngineError`` when MariaDB fails or cannot be reached.
    """

    def __init__(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        self._paths = paths
        self._spec = spec

    # databases ---------------------------------------------------------------------

    def list_databases(self) -> list[DatabaseSpec]:
        """User databases (not MariaDB's own schemas), by name."""
        with self._session("listing databases") as session:
            rows = session.execute(q.LIST_DATABASES)
        return [DatabaseSpec(name=n, character_set=cs, collate=co) for n, cs, co in rows]

    def create_databases(self, dbs: list[DatabaseSpec]) -> None:
        """Create all of ``dbs`` or none: databases made before a failure are dropped."""
        for db in dbs:
            CATALOG.validate_database(db)
        _require_distinct("database", [repr(db.name) for db in dbs])
        with self._session("creating databases") as session:
            for db in dbs:
                if _database_exists(session, db.name):
                    raise BadRequest(f"database {db.name!r} already exists")
            created: list[str] = []
            try:
                for db in dbs:
                    session.execute(q.create_database(db))
                    created.append(db.name)
            except BaseException:
                for name in created:
                    with suppress(pymysql.Error):
                        session.execute(q.drop_database(name))
                raise

    def delete_database(self, name: str) -> None:
        """Revoke every grant on database ``name``, end the sessions using it, drop it."""
        CATALOG.check_database_name(name)
        with self._session(f"deleting database {name!r}") as session:
            _require_databases(session, [name])
            for user, host in session.execute(q.GRANTS_ON_PATTERN, (q.grant_pattern(name),)):
                _revoke(session, name, user, host)
            for (session_id,) in session.execute(q.SESSIONS_IN_DATABASE, (name,)):
                _kill(session, session_id)
            session.execute(q.drop_database(name))

    # users -------------------------------------------------------------------------

    def list_users(self) -> list[UserView]:
        """Accounts other than MariaDB's own, ``root`` and roles, with their databases."""
        with self._session("listing users") as session:
            accounts = session.execute(q.LIST_USERS)
            access = _access_by_account(session)
        return [
            UserView(name=name, host=host, databases=tuple(access.get((name, host), ())))
            for name, host in accounts
        ]

    def get_user(self, name: str, host: str) -> UserView:
        return UserView(name=name, host=host, databases=tuple(self.list_access(name, host)))

    def create_users(self, users: list[UserSpec]) -> None:
        """Create every user with its grants, or none of them."""
        for user in users:
            CATALOG.validate_user(user)
        _require_distinct("user", [_account(user.name, user.host) for user in users])
        with self._session("creating users") as session:
            for user in users:
                if _user_exists(session, user.name, user.host):
                    raise BadRequest(f"user {_account(user.name, user.host)} already exists")
            _require_databases(session, sorted({db for user in users for db in user.databases}))
            created: list[UserSpec] = []
            try:
                for user in users:
                    session.execute(*q.create_user(user.name, user.host, user.password or ""))
                    created.append(user)
                    for db in user.databases:
                        session.execute(*q.grant_database(db, user.name, user.host))
            except BaseException:
                for done in created:
                    with suppress(pymysql.Error):
                        session.execute(*q.drop_user(done.name, done.host))
                raise

    def delete_user(self, name: str, host: str) -> None:
        """Drop the account and end the sessions it was serving."""
        self._check_user_ref(name, host)
        with self._session(f"deleting user {_account(name, host)}") as session:
            _require_user(session, name, host)
            session.execute(*q.drop_user(name, host))
            _end_orphaned_sessions(session, name)

    def update_user(self, name: str, host: str, update: UserUpdate) -> None:
        """Set the password and/or rename the account (name and host), keeping its grants."""
        self._check_user_ref(name, host)
        if update.password is not None and not update.password:
            raise BadRequest("password must not be empty")
        new_name = update.name if update.name is not None else name
        new_host = update.host if update.host is not None else host
        renamed = (new_name, new_host) != (name, host)
        if renamed:
            self._check_user_ref(new_name, new_host)
        if not renamed and update.password is None:
            raise BadRequest(f"nothing to change for user {_account(name, host)}")
        with self._session(f"updating user {_account(name, host)}") as session:
            _require_user(session, name, host)
            if renamed and _user_exists(session, new_name, new_host):
                raise BadRequest(f"user {_account(new_name, new_host)} already exists")
            if update.password is not None:
                session.execute(*q.alter_password(name, host, update.password))
            if renamed:
                session.execute(*q.rename_user(name, host, new_name, new_host))

    # access ------------------------------------------------------------------------

    def list_access(self, name: str, host: str) -> list[str]:
        """Databases granted to the user (through ``create_users``/``grant_access``)."""
        self._check_user_ref(name, host)
        with self._session(f"listing access of user {_account(name, host)}") as session:
            _require_user(session, name, host)
            patterns = [row[0] for row in session.execute(q.GRANTS_OF_USER, (name, host))]
            existing = {row[0] for row in session.execute(q.LIST_DATABASES)}
        return _databases_of(patterns, existing)

    def grant_access(self, name: str, host: str, databases: list[str]) -> None:
        """Grant every database in ``databases`` (all must exist). Idempotent."""
        self._check_user_ref(name, host)
        for db in databases:
            CATALOG.check_database_name(db)
        with self._session(f"granting access to user {_account(name, host)}") as session:
            _require_user(session, name, host)
            _require_databases(session, databases)
            for db in databases:
                session.execute(*q.grant_database(db, name, host))

    def revoke_access(self, name: str, host: str, database: str) -> None:
        """Take back ``database`` from the user. Idempotent."""
        self._check_user_ref(name, host)
        CATALOG.check_database_name(database)
        with self._session(f"revoking access of user {_account(name, host)}") as session:
            _require_user(session, name, host)
            _require_databases(session, [database])
            _revoke(session, database, name, host)

    # root --------------------------------------------------------------------------

    def enable_root(self, password: str) -> str:
        """Make ``root@%`` exist with ``password`` (a random one if empty) and the root
        privileges; return that password."""
        secret = password or secrets.token_urlsafe(_ROOT_PASSWORD_BYTES)
        with self._session("enabling root") as session:
            if _user_exists(session, ROOT_USER, ROOT_HOST):
                session.execute(*q.alter_password(ROOT_USER, ROOT_HOST, secret))
                session.execute(*q.revoke_all(ROOT_USER, ROOT_HOST))
            else:
                session.execute(*q.create_user(ROOT_USER, ROOT_HOST, secret))
            session.execute(*q.grant_root(ROOT_USER, ROOT_HOST))
        return secret

    def disable_root(self) -> None:
        """Drop ``root@%`` and end its sessions."""
        with self._session("disabling root") as session:
            if not _user_exists(session, ROOT_USER, ROOT_HOST):
                raise NotFound("root is not enabled")
            session.execute(*q.drop_user(ROOT_USER, ROOT_HOST))
            _end_orphaned_sessions(session, ROOT_USER)

    def is_root_enabled(self) -> bool:
        with self._session("checking root") as session:
            return _user_exists(session, ROOT_USER, ROOT_HOST)

    # helpers -----------------------------------------------------------------------

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        with translate_errors(action), connect(self._paths) as session:
            yield session

    @staticmethod
    def _check_user_ref(name: str, host: str) -> None:
        CATALOG.check_user_name(name)
        check_host(host)


def _account(name: str, host: str) -> str:
    """``'name'@'host'`` for messages (both are validated names without quotes)."""
    return f"'{name}'@'{host}'"


def _user_exists(session: Session, name: str, host: str) -> bool:
    return bool(session.execute(q.USER_EXISTS, (name, host)))


def _require_user(session: Session, name: str, host: str) -> None:
    if not _user_exists(session, name, host):
        raise NotFound(f"user {_account(name, host)} does not exist")


def _database_exists(session: Session, name: str) -> bool:
    return bool(session.execute(q.DATABASE_EXISTS, (name,)))


def _require_databases(session: Session, names: Iterable[str]) -> None:
    for name in names:
        if not _database_exists(session, name):
            raise NotFound(f"database {name!r} does not exist")


def _revoke(session: Session, database: str, name: str, host: str) -> None:
    try:
        session.execute(*q.revoke_database(database, name, host))
    except pymysql.Error as exc:
        if error_code(exc) != _NO_SUCH_GRANT:
            raise


def _kill(session: Session, session_id: int) -> None:
    try:
        session.execute(*q.kill(session_id))
    except pymysql.Error as exc:  # it ended meanwhile
        if error_code(exc) != _UNKNOWN_THREAD:
            raise


def _end_orphaned_sessions(session: Session, name: str) -> None:
    """Kill sessions of user ``name`` that no remaining account of that name would admit
    (MariaDB keeps a dropped account's sessions open)."""
    hosts = [row[0] for row in session.execute(q.ACCOUNTS_NAMED, (name,))]
    for session_id, user, client in session.execute(q.SESSIONS):
        if user != name:
            continue
        address = str(client or "").rpartition(":")[0] or str(client or "")
        if not any(host_matches(host, address) for host in hosts):
            _kill(session, session_id)


def _access_by_account(session: Session) -> dict[tuple[str, str], list[str]]:
    existing = {row[0] for row in session.execute(q.LIST_DATABASES)}
    patterns: dict[tuple[str, str], list[str]] = defaultdict(list)
    for user, host, pattern in session.execute(q.LIST_GRANTS):
        patterns[(user, host)].append(pattern)
    return {account: _databases_of(found, existing) for account, found in patterns.items()}


def _databases_of(patterns: Iterable[str], existing: set[str]) -> list[str]:
    """Existing user databases named exactly by grant ``patterns``, sorted."""
    names = {q.unescape_grant_pattern(pattern) for pattern in patterns}
    hidden = set(SYSTEM_DATABASES)
    return sorted(name for name in names if name in existing and name not in hidden)


def _require_distinct(kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BadRequest(
                f"{kind} {name} is listed twice"
                if "@" in name
                else f"{kind} {name!r} is listed twice"
            )
        seen.add(name)
