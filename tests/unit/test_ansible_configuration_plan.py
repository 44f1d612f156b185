"""The configuration module's plan: desired group vs the API's view of it."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.coffer.dbaas.plugins.module_utils.configuration_plan import (
    ConfigurationAction,
    ConfigurationChange,
    ConfigurationWanted,
    changed_values,
    decide_configuration,
)
from ansible_collections.coffer.dbaas.plugins.module_utils.plans import PlanError, State


def view(values: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {
        "id": "c1",
        "name": "tuned",
        "description": description,
        "datastore_name": "postgresql",
        "datastore_version_name": "15",
        "datastore_version_number": "15",
        "values": values,
        "instance_count": 0,
    }


@pytest.mark.parametrize(
    ("wanted", "observed", "keys"),
    [
        ({"work_mem": 8192}, {"work_mem": 8192}, ()),
        ({"work_mem": 8192}, {"work_mem": 4096}, ("work_mem",)),
        ({"work_mem": 8192}, {}, ("work_mem",)),
        ({}, {"work_mem": 8192}, ("work_mem",)),
        ({"factor": 2}, {"factor": 2.0}, ()),
        ({"autovacuum": True}, {"autovacuum": 1}, ("autovacuum",)),
        ({"autovacuum": False}, {"autovacuum": False}, ()),
        ({"db_password": "x"}, {"db_password": "***"}, ()),
        ({"a": 1, "b": "on", "c": 3}, {"c": 3, "b": "off", "d": 4}, ("a", "b", "d")),
    ],
)
def test_changed_values(
    wanted: dict[str, Any], observed: dict[str, Any], keys: tuple[str, ...]
) -> None:
    assert changed_values(wanted, observed) == keys


def test_create_delete_and_nothing() -> None:
    wanted = ConfigurationWanted("tuned", values={"work_mem": 8192})
    create = [ConfigurationAction(ConfigurationChange.CREATE)]
    assert decide_configuration(State.PRESENT, wanted, None) == create
    observed = view({"work_mem": 8192})
    assert decide_configuration(State.PRESENT, wanted, observed) == []
    delete = [ConfigurationAction(ConfigurationChange.DELETE)]
    assert decide_configuration(State.ABSENT, wanted, observed) == delete
    assert decide_configuration(State.ABSENT, wanted, None) == []


def test_values_and_description_changes() -> None:
    wanted = ConfigurationWanted(
        "tuned", values={"work_mem": 8192, "max_connections": 150}, description="bigger sorts"
    )
    actions = decide_configuration(State.PRESENT, wanted, view({"work_mem": 4096}))
    assert actions == [
        ConfigurationAction(ConfigurationChange.SET_VALUES, ("max_connections", "work_mem")),
        ConfigurationAction(ConfigurationChange.SET_DESCRIPTION),
    ]
    assert str(actions[0]) == "set values of max_connections, work_mem"
    unmanaged = ConfigurationWanted("tuned")
    assert decide_configuration(State.PRESENT, unmanaged, view({"work_mem": 1}, "x")) == []


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        (ConfigurationWanted("tuned", datastore="mariadb"), "is for postgresql, not mariadb"),
        (ConfigurationWanted("tuned", datastore_version="16"), "is for postgresql 15, not 16"),
    ],
)
def test_the_datastore_cannot_change(wanted: ConfigurationWanted, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        decide_configuration(State.PRESENT, wanted, view({}))


def test_same_datastore_by_name_or_number() -> None:
    wanted = ConfigurationWanted("tuned", datastore="postgresql", datastore_version="15")
    assert decide_configuration(State.PRESENT, wanted, view({})) == []
