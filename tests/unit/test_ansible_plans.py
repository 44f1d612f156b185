"""Pure plans shared by the Ansible modules: presence, name lookup, backups, messages."""

from __future__ import annotations

import pytest
from ansible_collections.coffer.dbaas.plugins.module_utils.backup_plan import decide_backup
from ansible_collections.coffer.dbaas.plugins.module_utils.plans import (
    PlanError,
    Presence,
    State,
    decide_presence,
    describe,
    find_unique,
)


@pytest.mark.parametrize(
    ("state", "exists", "expected"),
    [
        (State.PRESENT, False, [Presence.CREATE]),
        (State.PRESENT, True, []),
        (State.ABSENT, True, [Presence.DELETE]),
        (State.ABSENT, False, []),
    ],
)
def test_presence(state: State, exists: bool, expected: list[Presence]) -> None:
    assert decide_presence(state, exists=exists) == expected


def test_presence_converges_after_the_plan_is_carried_out() -> None:
    for state in State:
        exists = False
        for action in decide_presence(state, exists=exists):
            exists = action is Presence.CREATE
        assert decide_presence(state, exists=exists) == []


def test_find_unique() -> None:
    items = [{"id": "1", "name": "a"}, {"id": "2", "name": "b"}, {"id": "3", "name": "b"}]
    assert find_unique(items, "a", kind="instance") == {"id": "1", "name": "a"}
    assert find_unique(items, "c", kind="instance") is None
    with pytest.raises(PlanError, match=r"2 instances are named 'b' \(2, 3\)"):
        find_unique(items, "b", kind="instance")


def test_describe() -> None:
    assert describe("instance db", []) == "instance db: no change"
    assert describe("instance db", ["create"]) == "instance db: create"
    assert describe("user u", ["grant access to a", "revoke access to b"]) == (
        "user u: grant access to a; revoke access to b"
    )


def backup(**over: object) -> dict[str, object]:
    view: dict[str, object] = {
        "id": "b1",
        "name": "nightly",
        "instance_id": "i1",
        "status": "COMPLETED",
    }
    view.update(over)
    return view


def test_backup_taken_once() -> None:
    assert decide_backup(State.PRESENT, "nightly", None, instance_id="i1") == [Presence.CREATE]
    assert decide_backup(State.PRESENT, "nightly", backup(), instance_id="i1") == []
    assert decide_backup(State.PRESENT, "nightly", backup(status="BUILDING")) == []
    assert decide_backup(State.ABSENT, "nightly", backup(status="FAILED")) == [Presence.DELETE]
    assert decide_backup(State.ABSENT, "nightly", None) == []


def test_backup_of_another_instance_is_refused() -> None:
    with pytest.raises(PlanError, match="is of instance i1, not i2"):
        decide_backup(State.PRESENT, "nightly", backup(), instance_id="i2")


@pytest.mark.parametrize("status", ["FAILED", "DELETE_FAILED"])
def test_failed_backup_is_not_present(status: str) -> None:
    view = backup(status=status, fail_reason="disk full")
    with pytest.raises(PlanError, match=f"is {status} \\(disk full\\); delete it"):
        decide_backup(State.PRESENT, "nightly", view, instance_id="i1")
