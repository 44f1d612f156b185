"""Users and root inside a running Redis (the ``Admin`` seam), as ACL users.

Trove users are ACL users with the tenant permission set; ``root`` is an ACL user with
the root set (both in ``coffer.engines.redis.acl``). Redis has no databases, so the
database and access methods raise ``NotImplementedByDatastore`` (501).

Every change is followed by ``ACL SAVE`` so it survives a restart. A change is all or
nothing: the ACL entries it touches are recorded first and put back if a step or the
save fails. Passwords are sent as SHA-256 hashes and never appear in messages.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import redis

from coffer.contracts.engine import DatabaseSpec, InstanceSpec, UserSpec, UserUpdate, UserView
from coffer.engines.base import InstancePaths
from coffer.engines.redis.acl import parse_user_line, password_rules, root_rules, tenant_rules
from coffer.engines.redis.catalog import (
    CATALOG,
    NO_DATABASES,
    ROOT_USER,
    check_host,
    is_reserved_user,
)
from coffer.engines.redis.connection import Client, connect, run, translate_errors
from coffer.errors import BadRequest, EngineError, NotFound, NotImplementedByDatastore

__all__ = ["RedisAdmin"]

_ROOT_PASSWORD_BYTES = 24
#: ACL entries by user name, as ``ACL LIST`` shows them (rules after the name).
AclEntries = dict[str, list[str]]


class RedisAdmin:
    """The Redis ``Admin`` for one instance; each call opens its own connection.

    ``host`` arguments must be ``"%"``. Raises ``BadRequest`` for bad names and
    duplicates, ``NotFound`` for unknown users, ``NotImplementedByDatastore`` for
    databases and access, ``EngineError`` when Redis fails or cannot be reached.
    """

    def __init__(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        self._paths = paths
        self._spec = spec

    # databases and access: Redis has none -------------------------------------------

    def list_databases(self) -> list[DatabaseSpec]:
        raise NotImplementedByDatastore(NO_DATABASES)

    def create_databases(self, dbs: list[DatabaseSpec]) -> None:
        raise NotImplementedByDatastore(NO_DATABASES)

    def delete_database(self, name: str) -> None:
        raise NotImplementedByDatastore(NO_DATABASES)

    def list_access(self, name: str, host: str) -> list[str]:
        raise NotImplementedByDatastore(NO_DATABASES)

    def grant_access(self, name: str, host: str, databases: list[str]) -> None:
        raise NotImplementedByDatastore(NO_DATABASES)

    def revoke_access(self, name: str, host: str, database: str) -> None:
        raise NotImplementedByDatastore(NO_DATABASES)

    # users -------------------------------------------------------------------------

    def list_users(self) -> list[UserView]:
        """Every ACL user except ``default``, ``root`` and Coffer's own, by name."""
        with self._session("listing users") as client:
            names = sorted(_acl_entries(client))
        return [UserView(name=name) for name in names if not is_reserved_user(name)]

    def get_user(self, name: str, host: str) -> UserView:
        _check_user_ref(name, host)
        with self._session(f"getting user {name!r}") as client:
            _require_user(_acl_entries(client), name)
        return UserView(name=name)

    def create_users(self, users: list[UserSpec]) -> None:
        """Create every user with the tenant permission set, or none of them."""
        for user in users:
            CATALOG.validate_user(user)
        names = [user.name for user in users]
        _require_distinct(names)

        def create(client: Client) -> None:
            existing = _acl_entries(client)
            for name in names:
                if name in existing:
                    raise BadRequest(f"user {name!r} already exists")
            for user in users:
                _set_user(client, user.name, tenant_rules(user.password or ""))

        self._change("creating users", names, create)

    def delete_user(self, name: str, host: str) -> None:
        """Delete the user; Redis closes the connections authenticated as it."""
        _check_user_ref(name, host)

        def delete(client: Client) -> None:
            _require_user(_acl_entries(client), name)
            run(client, "ACL", "DELUSER", name)

        self._change(f"deleting user {name!r}", [name], delete)

    def update_user(self, name: str, host: str, update: UserUpdate) -> None:
        """Set the password and/or rename (a new user with the same rules replaces the
        old one, whose connections are closed); host changes are refused."""
        _check_user_ref(name, host)
        if update.host is not None:
            check_host(update.host)
        if update.password is not None and not update.password:
            raise BadRequest("password must not be empty")
        new_name = update.name if update.name not in (None, name) else None
        if new_name is not None:
            CATALOG.check_user_name(new_name)
        if new_name is None and update.password is None:
            raise BadRequest(f"nothing to change for user {name!r}")
        password = [] if update.password is None else password_rules(update.password)

        def change(client: Client) -> None:
            entries = _acl_entries(client)
            rules = _require_user(entries, name)
            if new_name is None:
                _set_user(client, name, password)
                return
            if new_name in entries:
                raise BadRequest(f"user {new_name!r} already exists")
            _set_user(client, new_name, ["reset", *rules, *password])
            run(client, "ACL", "DELUSER", name)

        touched = [name] if new_name is None else [name, new_name]
        self._change(f"updating user {name!r}", touched, change)

    # root --------------------------------------------------------------------------

    def enable_root(self, password: str) -> str:
        """Give ``root`` the root permission set and ``password`` (a random one if
        empty), replacing any previous password; return the password."""
        secret = password or secrets.token_urlsafe(_ROOT_PASSWORD_BYTES)

        def enable(client: Client) -> None:
            _set_user(client, ROOT_USER, root_rules(secret))

        self._change("enabling root", [ROOT_USER], enable)
        return secret

    def disable_root(self) -> None:
        """Delete ``root``, closing its connections."""

        def disable(client: Client) -> None:
            if not _enabled(_acl_entries(client).get(ROOT_USER)):
                raise NotFound("root is not enabled")
            run(client, "ACL", "DELUSER", ROOT_USER)

        self._change("disabling root", [ROOT_USER], disable)

    def is_root_enabled(self) -> bool:
        with self._session("checking root") as client:
            return _enabled(_acl_entries(client).get(ROOT_USER))

    # helpers -----------------------------------------------------------------------

    @contextmanager
    def _session(self, action: str) -> Iterator[Client]:
        with translate_errors(action), connect(self._paths) as client:
            yield client

    def _change(self, action: str, names: list[str], change: Callable[[Client], None]) -> None:
        """Run ``change`` then ``ACL SAVE``; on any failure put the ACL entries of
        ``names`` back as they were before (best effort) and re-raise."""
        with self._session(action) as client:
            before = _acl_entries(client)
            try:
                change(client)
                run(client, "ACL", "SAVE")
            except BaseException:
                with suppress(redis.RedisError):
                    _restore(client, {name: before.get(name) for name in names})
                raise


def _acl_entries(client: Client) -> AclEntries:
    entries: AclEntries = {}
    for line in run(client, "ACL", "LIST"):
        parsed = parse_user_line(str(line))
        if parsed is not None:
            entries[parsed[0]] = parsed[1]
    return entries


def _set_user(client: Client, name: str, rules: list[str]) -> None:
    run(client, "ACL", "SETUSER", name, *rules)


def _restore(client: Client, before: dict[str, list[str] | None]) -> None:
    now = _acl_entries(client)
    for name, rules in before.items():
        if now.get(name) == rules:
            continue
        if rules is None:
            run(client, "ACL", "DELUSER", name)
        else:
            _set_user(client, name, ["reset", *rules])
    run(client, "ACL", "SAVE")


def _require_user(entries: AclEntries, name: str) -> list[str]:
    rules = entries.get(name)
    if rules is None:
        raise NotFound(f"user {name!r} does not exist")
    if any(rule.startswith("(") for rule in rules):
        raise EngineError(f"user {name!r} has ACL selectors, which Coffer does not manage")
    return rules


def _enabled(rules: list[str] | None) -> bool:
    return rules is not None and "on" in rules


def _check_user_ref(name: str, host: str) -> None:
    check_host(host)
    CATALOG.check_user_name(name)


def _require_distinct(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BadRequest(f"user {name!r} is listed twice")
        seen.add(name)
