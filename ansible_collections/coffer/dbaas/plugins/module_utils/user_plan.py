"""The user module's plan: a desired database user vs the API's users list (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ansible_collections.coffer.dbaas.plugins.module_utils.plans import PlanError, State

__all__ = [
    "ANY_HOST",
    "PasswordUpdate",
    "UserAction",
    "UserChange",
    "UserWanted",
    "decide_user",
    "find_user",
]

#: Trove's host of a user given without one
ANY_HOST = "%"


class PasswordUpdate(StrEnum):
    """When an existing user's password is set: the API never shows a password, so
    ``on_create`` (the default) is what keeps a second run from reporting a change."""

    ALWAYS = "always"
    ON_CREATE = "on_create"


class UserChange(StrEnum):
    CREATE = "create"
    DELETE = "delete"
    SET_PASSWORD = "set password"
    GRANT = "grant access to"
    REVOKE = "revoke access to"


@dataclass(frozen=True)
class UserAction:
    """One step; ``databases`` are those a CREATE, GRANT or REVOKE names."""

    change: UserChange
    databases: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.change is UserChange.CREATE and self.databases:
            return f"create with access to {', '.join(self.databases)}"
        return f"{self.change} {', '.join(self.databases)}".rstrip()


@dataclass(frozen=True)
class UserWanted:
    """What the task asks for. ``databases`` None leaves access as it is; a list is the
    whole set of databases the user may use. ``password`` is needed only to create (or
    with ``ALWAYS``) and never shows in a ``repr``."""

    name: str
    host: str = ANY_HOST
    password: str | None = field(default=None, repr=False)
    databases: tuple[str, ...] | None = None
    update_password: PasswordUpdate = PasswordUpdate.ON_CREATE


def find_user(users: Iterable[Mapping[str, Any]], name: str, host: str) -> Mapping[str, Any] | None:
    """The entry of the API's users list for ``name`` at ``host`` (absent host: ``%``)."""
    for user in users:
        if user.get("name") == name and (user.get("host") or ANY_HOST) == host:
            return user
    return None


def decide_user(
    state: State, wanted: UserWanted, observed: Mapping[str, Any] | None
) -> list[UserAction]:
    """The steps from ``observed`` (the user's entry, with ``databases: [{name}]``; None if
    there is none) to ``wanted``: create (with its databases) or delete, else set the
    password (``ALWAYS`` only), grant the missing databases, revoke the extra ones.

    Raises ``PlanError`` when a user to create (or whose password is always set) has no
    password.
    """
    if state is State.ABSENT:
        return [] if observed is None else [UserAction(UserChange.DELETE)]
    always = wanted.update_password is PasswordUpdate.ALWAYS
    if wanted.password is None and (observed is None or always):
        raise PlanError(f"password is needed to create user {wanted.name} or to set its password")
    if observed is None:
        return [UserAction(UserChange.CREATE, tuple(sorted(set(wanted.databases or ()))))]
    actions = [UserAction(UserChange.SET_PASSWORD)] if always else []
    if wanted.databases is not None:
        have = {str(d.get("name")) for d in observed.get("databases") or () if d.get("name")}
        want = set(wanted.databases)
        if want - have:
            actions.append(UserAction(UserChange.GRANT, tuple(sorted(want - have))))
        if have - want:
            actions.append(UserAction(UserChange.REVOKE, tuple(sorted(have - want))))
    return actions
