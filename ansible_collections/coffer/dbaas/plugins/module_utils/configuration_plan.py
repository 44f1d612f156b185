"""The configuration module's plan: a desired configuration group vs its view (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ansible_collections.coffer.dbaas.plugins.module_utils.plans import PlanError, State

__all__ = [
    "MASKED",
    "ConfigurationAction",
    "ConfigurationChange",
    "ConfigurationWanted",
    "changed_values",
    "decide_configuration",
]

#: how the API shows the value of a secret-looking parameter
MASKED = "***"


class ConfigurationChange(StrEnum):
    CREATE = "create"
    DELETE = "delete"
    SET_VALUES = "set values of"
    SET_DESCRIPTION = "set description"


@dataclass(frozen=True)
class ConfigurationAction:
    """One step; ``keys`` are the parameters SET_VALUES adds, changes or removes."""

    change: ConfigurationChange
    keys: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.change} {', '.join(self.keys)}".rstrip()


@dataclass(frozen=True)
class ConfigurationWanted:
    """What the task asks for; None leaves that part as it is. ``values`` is the group's
    whole set of parameters: any other one is removed."""

    name: str
    values: Mapping[str, Any] | None = field(default=None)
    description: str | None = None
    datastore: str | None = None
    datastore_version: str | None = None


def changed_values(wanted: Mapping[str, Any], observed: Mapping[str, Any]) -> tuple[str, ...]:
    """The parameter names (sorted) whose value differs, including those on one side only.

    A value the API masks (``***``) cannot be compared and counts as unchanged. Numbers
    compare by value (``8`` equals ``8.0``), but a boolean never equals a number.
    """
    keys = set(wanted) | set(observed)
    return tuple(
        sorted(k for k in keys if not _same(wanted.get(k, _MISSING), observed.get(k, _MISSING)))
    )


_MISSING = object()


def _same(wanted: Any, observed: Any) -> bool:
    if wanted is _MISSING or observed is _MISSING:
        return False
    if observed == MASKED:
        return True
    if isinstance(wanted, bool) != isinstance(observed, bool):
        return False
    return bool(wanted == observed)


def decide_configuration(
    state: State, wanted: ConfigurationWanted, observed: Mapping[str, Any] | None
) -> list[ConfigurationAction]:
    """The steps from ``observed`` (the group's full view with ``values``; None if there
    is none) to ``wanted``.

    Raises ``PlanError`` when the existing group is for another datastore or version (a
    group cannot move between them).
    """
    if state is State.ABSENT:
        return [] if observed is None else [ConfigurationAction(ConfigurationChange.DELETE)]
    if observed is None:
        return [ConfigurationAction(ConfigurationChange.CREATE)]
    _refuse_datastore_change(wanted, observed)
    actions: list[ConfigurationAction] = []
    if wanted.values is not None:
        keys = changed_values(wanted.values, observed.get("values") or {})
        if keys:
            actions.append(ConfigurationAction(ConfigurationChange.SET_VALUES, keys))
    if wanted.description is not None and wanted.description != (observed.get("description") or ""):
        actions.append(ConfigurationAction(ConfigurationChange.SET_DESCRIPTION))
    return actions


def _refuse_datastore_change(wanted: ConfigurationWanted, observed: Mapping[str, Any]) -> None:
    kind = observed.get("datastore_name")
    version = observed.get("datastore_version_name")
    if wanted.datastore is not None and wanted.datastore != kind:
        raise PlanError(
            f"configuration group {wanted.name} is for {kind}, not {wanted.datastore} (a group "
            "cannot change datastore: delete it, or use another name)"
        )
    known = {str(version), str(observed.get("datastore_version_number"))}
    if wanted.datastore_version is not None and wanted.datastore_version not in known:
        raise PlanError(
            f"configuration group {wanted.name} is for {kind} {version}, not "
            f"{wanted.datastore_version} (a group cannot change version: delete it, or use "
            "another name)"
        )
