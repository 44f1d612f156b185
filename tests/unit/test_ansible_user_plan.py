"""The user module's plan: desired user vs the API's users list."""

from __future__ import annotations

import pytest
from ansible_collections.coffer.dbaas.plugins.module_utils.plans import PlanError, State
from ansible_collections.coffer.dbaas.plugins.module_utils.user_plan import (
    PasswordUpdate,
    UserAction,
    UserChange,
    UserWanted,
    decide_user,
    find_user,
)

USERS = [
    {"name": "app", "host": "%", "databases": [{"name": "shop"}, {"name": "old"}]},
    {"name": "app", "host": "10.0.0.1", "databases": []},
    {"name": "report", "databases": []},
]


def test_find_user_by_name_and_host() -> None:
    assert find_user(USERS, "app", "%") is USERS[0]
    assert find_user(USERS, "app", "10.0.0.1") is USERS[1]
    assert find_user(USERS, "report", "%") is USERS[2]  # no host shown means any host
    assert find_user(USERS, "app", "10.0.0.2") is None


def test_create_with_its_databases() -> None:
    wanted = UserWanted("app", password="s3cret-pw", databases=("shop", "audit", "shop"))
    assert decide_user(State.PRESENT, wanted, None) == [
        UserAction(UserChange.CREATE, ("audit", "shop"))
    ]
    assert str(decide_user(State.PRESENT, wanted, None)[0]) == "create with access to audit, shop"


def test_create_needs_a_password() -> None:
    with pytest.raises(PlanError, match="password is needed to create user app"):
        decide_user(State.PRESENT, UserWanted("app"), None)


def test_existing_user_keeps_its_password_by_default() -> None:
    wanted = UserWanted("app", password="another-pw")
    assert decide_user(State.PRESENT, wanted, USERS[0]) == []
    always = UserWanted("app", password="another-pw", update_password=PasswordUpdate.ALWAYS)
    assert decide_user(State.PRESENT, always, USERS[0]) == [UserAction(UserChange.SET_PASSWORD)]
    with pytest.raises(PlanError, match="to set its password"):
        decide_user(
            State.PRESENT, UserWanted("app", update_password=PasswordUpdate.ALWAYS), USERS[0]
        )


def test_access_is_the_whole_list_when_given() -> None:
    wanted = UserWanted("app", databases=("shop", "audit"))
    assert decide_user(State.PRESENT, wanted, USERS[0]) == [
        UserAction(UserChange.GRANT, ("audit",)),
        UserAction(UserChange.REVOKE, ("old",)),
    ]
    assert decide_user(State.PRESENT, UserWanted("app", databases=("old", "shop")), USERS[0]) == []
    assert decide_user(State.PRESENT, UserWanted("app"), USERS[0]) == []


def test_absent() -> None:
    assert decide_user(State.ABSENT, UserWanted("app"), USERS[0]) == [UserAction(UserChange.DELETE)]
    assert decide_user(State.ABSENT, UserWanted("app"), None) == []


def test_password_never_in_repr() -> None:
    assert "s3cret-pw" not in repr(UserWanted("app", password="s3cret-pw"))
