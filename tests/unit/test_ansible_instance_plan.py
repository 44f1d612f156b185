"""The instance module's plan: desired instance vs the API's detail view."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.coffer.dbaas.plugins.module_utils.instance_plan import (
    InstanceAction,
    InstanceChange,
    InstanceSpec,
    decide_instance,
)
from ansible_collections.coffer.dbaas.plugins.module_utils.plans import PlanError, State


def view(*, flavor: str = "2", size: int = 1, group: str | None = None) -> dict[str, Any]:
    """The parts of an instance's detail view the plan reads, as the API shows them."""
    out: dict[str, Any] = {
        "id": "i1",
        "name": "db",
        "status": "ACTIVE",
        "flavor": {"id": flavor, "links": []},
        "datastore": {"type": "postgresql", "version": "15", "version_number": "15"},
        "volume": {"size": size, "used": 0.1},
    }
    if group is not None:
        out["configuration"] = {"id": group, "name": "tuned", "links": []}
    return out


def test_create_when_missing_and_nothing_when_absent() -> None:
    spec = InstanceSpec("db", flavor="tiny", volume_size=1)
    assert decide_instance(State.PRESENT, spec, None) == [InstanceAction(InstanceChange.CREATE)]
    assert decide_instance(State.ABSENT, spec, None) == []
    assert decide_instance(State.ABSENT, spec, view()) == [InstanceAction(InstanceChange.DELETE)]


def test_create_needs_a_flavor() -> None:
    with pytest.raises(PlanError, match="flavor is needed to create instance db"):
        decide_instance(State.PRESENT, InstanceSpec("db"), None)


def test_matching_instance_needs_nothing() -> None:
    spec = InstanceSpec(
        "db",
        flavor="2",
        volume_size=1,
        datastore="postgresql",
        datastore_version="15",
        configuration_id="c1",
    )
    assert decide_instance(State.PRESENT, spec, view(group="c1")) == []
    # what the task leaves out is not managed
    assert decide_instance(State.PRESENT, InstanceSpec("db"), view(flavor="9", group="c9")) == []


def test_changes_in_the_order_the_server_takes_them() -> None:
    spec = InstanceSpec("db", flavor="3", volume_size=4, configuration_id="c2")
    actions = decide_instance(State.PRESENT, spec, view(group="c1"))
    assert actions == [
        InstanceAction(InstanceChange.DETACH_CONFIGURATION),
        InstanceAction(InstanceChange.RESIZE_FLAVOR, "3"),
        InstanceAction(InstanceChange.RESIZE_VOLUME, 4),
        InstanceAction(InstanceChange.ATTACH_CONFIGURATION, "c2"),
    ]
    assert [str(a) for a in actions] == [
        "detach configuration group",
        "resize flavor to 3",
        "resize volume to 4",
        "attach configuration group c2",
    ]


def test_configuration_attach_and_detach() -> None:
    attach = InstanceSpec("db", configuration_id="c1")
    assert decide_instance(State.PRESENT, attach, view()) == [
        InstanceAction(InstanceChange.ATTACH_CONFIGURATION, "c1")
    ]
    detach = InstanceSpec("db", configuration_id="")
    assert decide_instance(State.PRESENT, detach, view(group="c1")) == [
        InstanceAction(InstanceChange.DETACH_CONFIGURATION)
    ]
    assert decide_instance(State.PRESENT, detach, view()) == []


def test_the_volume_cannot_shrink() -> None:
    with pytest.raises(PlanError, match="volume of instance db is 5 GB and cannot shrink to 2"):
        decide_instance(State.PRESENT, InstanceSpec("db", volume_size=2), view(size=5))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (InstanceSpec("db", datastore="mariadb"), "its datastore cannot change to mariadb"),
        (InstanceSpec("db", datastore_version="16"), "its datastore version cannot change to 16"),
    ],
)
def test_the_datastore_cannot_change(spec: InstanceSpec, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        decide_instance(State.PRESENT, spec, view())


def test_the_plan_is_empty_once_carried_out() -> None:
    """Applying each action to the view, as the server would, leaves nothing to do."""
    spec = InstanceSpec("db", flavor="3", volume_size=2, configuration_id="c2")
    observed = view(group="c1")
    for action in decide_instance(State.PRESENT, spec, observed):
        if action.change is InstanceChange.RESIZE_FLAVOR:
            observed["flavor"] = {"id": action.value}
        elif action.change is InstanceChange.RESIZE_VOLUME:
            observed["volume"] = {"size": action.value}
        elif action.change is InstanceChange.DETACH_CONFIGURATION:
            del observed["configuration"]
        elif action.change is InstanceChange.ATTACH_CONFIGURATION:
            observed["configuration"] = {"id": action.value}
    assert decide_instance(State.PRESENT, spec, observed) == []
