"""What every module's plan shares: desired states, plan errors, presence and name lookup.

Pure code: no Ansible and no HTTP, so it runs (and is unit-tested) without either. Each
module snapshots what the API shows, asks a ``decide_*`` function (here or in the
``*_plan`` modules beside it) for typed actions, carries them out unless in check mode,
and reports ``changed`` as "the plan had actions".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

__all__ = [
    "PlanError",
    "Presence",
    "State",
    "decide_presence",
    "describe",
    "find_unique",
]


class State(StrEnum):
    """The ``state`` option of every module."""

    PRESENT = "present"
    ABSENT = "absent"


class PlanError(ValueError):
    """The desired state cannot be reached from what exists (or the input is incomplete);
    the message says why, for a person. Raised before anything is changed."""


class Presence(StrEnum):
    """The action of a resource that is only created or deleted, never changed."""

    CREATE = "create"
    DELETE = "delete"


def decide_presence(state: State, *, exists: bool) -> list[Presence]:
    """``[CREATE]`` when wanted and missing, ``[DELETE]`` when unwanted and there, else
    ``[]`` (idempotent: a second run after the first plan was carried out decides
    nothing)."""
    if state is State.PRESENT and not exists:
        return [Presence.CREATE]
    if state is State.ABSENT and exists:
        return [Presence.DELETE]
    return []


def find_unique(
    items: Iterable[Mapping[str, Any]], name: str, *, kind: str, key: str = "name"
) -> Mapping[str, Any] | None:
    """The one item whose ``key`` equals ``name``; None if there is none.

    Several matches raise ``PlanError``: a module cannot tell which one the task means.
    """
    matches = [item for item in items if item.get(key) == name]
    if len(matches) > 1:
        ids = ", ".join(str(item.get("id", "?")) for item in matches)
        raise PlanError(f"{len(matches)} {kind}s are named {name!r} ({ids}); rename all but one")
    return matches[0] if matches else None


def describe(what: str, actions: Sequence[object]) -> str:
    """One sentence for the result's ``msg``: ``"instance db1: create"``, ``"instance db1:
    resize flavor to 2; attach configuration group c1"`` or ``"instance db1: no change"``."""
    if not actions:
        return f"{what}: no change"
    return f"{what}: {'; '.join(str(a) for a in actions)}"
