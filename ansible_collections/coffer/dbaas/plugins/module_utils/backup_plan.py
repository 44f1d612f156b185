"""The backup module's plan: a desired backup vs the API's view of the one with its name
(pure). A backup is only taken or deleted, never changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.coffer.dbaas.plugins.module_utils.plans import (
    PlanError,
    Presence,
    State,
    decide_presence,
)

__all__ = ["FAILED_STATES", "decide_backup"]

#: a backup in one of these states is not what ``state: present`` asks for
FAILED_STATES = frozenset({"FAILED", "DELETE_FAILED"})


def decide_backup(
    state: State,
    name: str,
    observed: Mapping[str, Any] | None,
    *,
    instance_id: str | None = None,
) -> list[Presence]:
    """CREATE, DELETE or nothing for the backup ``name`` (``observed`` its view, None if
    there is none; ``instance_id`` the instance it should be of, None if not known).

    Raises ``PlanError`` when the backup named so exists but is of another instance, or
    failed (a failed backup is never reported as present: delete it to take it again).
    """
    if state is State.PRESENT and observed is not None:
        owner = observed.get("instance_id")
        if instance_id is not None and owner != instance_id:
            raise PlanError(
                f"backup {name} exists but is of instance {owner}, not {instance_id}; "
                "give the new backup another name"
            )
        status = observed.get("status")
        if status in FAILED_STATES:
            reason = observed.get("fail_reason") or "no reason recorded"
            raise PlanError(
                f"backup {name} exists but is {status} ({reason}); delete it with "
                "state=absent to take it again"
            )
    return decide_presence(state, exists=observed is not None)
