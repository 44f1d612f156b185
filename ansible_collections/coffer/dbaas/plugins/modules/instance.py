"""Ansible module coffer.dbaas.instance: a Coffer database instance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.coffer.dbaas.plugins.module_utils.coffer_api import (
    ModuleResult,
    common_argument_spec,
    run_module,
    wait_argument_spec,
    wait_for_instance_deleted,
    wait_for_instance_idle,
)
from ansible_collections.coffer.dbaas.plugins.module_utils.instance_plan import (
    InstanceAction,
    InstanceChange,
    InstanceSpec,
    decide_instance,
)
from ansible_collections.coffer.dbaas.plugins.module_utils.plans import (
    State,
    describe,
    find_unique,
)

if TYPE_CHECKING:
    from coffer.client import CofferClient, JSONObject

DOCUMENTATION = r"""
module: instance
short_description: Create, change or delete a Coffer database instance
description:
  - Makes the instance with this name exist (or not) with the flavor, volume size and
    configuration group asked for. An existing instance is resized (flavor, volume
    growth) and its configuration group attached or detached to match; its datastore and
    version cannot change.
  - The instance is found by name, which must be unique in the project.
author: Coffer developers
extends_documentation_fragment: [coffer.dbaas.coffer]
options:
  name:
    description: The instance's name.
    type: str
    required: true
  flavor:
    description: Flavor name or id; needed to create the instance.
    type: str
  volume_size:
    description: Volume size in GB (it can grow, never shrink).
    type: int
  datastore:
    description: Datastore (C(postgresql), C(mariadb), C(redis)); the server's default if left out.
    type: str
  datastore_version:
    description: Datastore version; the datastore's default if left out.
    type: str
  configuration:
    description:
      - Configuration group (name or id) to have attached; an empty string detaches any.
      - Left out, the attached group is not managed.
    type: str
  wait:
    description:
      - Wait until the instance is ACTIVE and HEALTHY (or RESTART_REQUIRED) after
        creating or changing it, or gone after deleting it. Between two changes of one
        run the module always waits.
    type: bool
    default: true
  wait_timeout:
    description: Seconds for each wait.
    type: int
    default: 900
"""

EXAMPLES = r"""
- name: A PostgreSQL instance with a configuration group
  coffer.dbaas.instance:
    name: shop-db
    datastore: postgresql
    datastore_version: "15"
    flavor: small
    volume_size: 2
    configuration: shop-tuning
"""

RETURN = r"""
instance:
  description: The instance's detail view from the API ({} when absent or deleted).
  returned: always
  type: dict
actions:
  description: What was done (or, in check mode, would be done), in order.
  returned: always
  type: list
  elements: str
"""


def argument_spec() -> dict[str, Any]:
    spec = common_argument_spec()
    spec.update(wait_argument_spec(900))
    spec.update(
        name={"type": "str", "required": True},
        flavor={"type": "str"},
        volume_size={"type": "int"},
        datastore={"type": "str"},
        datastore_version={"type": "str"},
        configuration={"type": "str"},
    )
    return spec


def find_instance(client: CofferClient, name: str) -> JSONObject | None:
    """The detail view of the project's instance named ``name``, None if there is none."""
    found = find_unique(client.list_instances(), name, kind="instance")
    return None if found is None else client.get_instance(str(found["id"]))


def desired(client: CofferClient, params: dict[str, Any], *, exists: bool) -> InstanceSpec:
    """The spec, with names resolved to ids where the view shows ids (read-only calls)."""
    flavor = params["flavor"]
    if flavor is not None and exists:
        flavor = str(client.get_flavor(flavor).get("str_id") or flavor)
    group = params["configuration"]
    if group:
        group = str(client.find_configuration(group)["id"])
    return InstanceSpec(
        name=params["name"],
        flavor=flavor,
        volume_size=params["volume_size"],
        datastore=params["datastore"],
        datastore_version=params["datastore_version"],
        configuration_id=group,
    )


def apply(module: AnsibleModule, client: CofferClient) -> ModuleResult:
    params = module.params
    state = State(params["state"])
    observed = find_instance(client, params["name"])
    if observed is not None and state is State.PRESENT and params["wait"] and not module.check_mode:
        observed = wait_for_instance_idle(client, observed["id"], params["wait_timeout"])
    spec = desired(client, params, exists=observed is not None)
    actions = decide_instance(state, spec, observed)
    result: ModuleResult = {
        "changed": bool(actions),
        "actions": [str(a) for a in actions],
        "msg": describe(f"instance {spec.name}", actions),
        "instance": observed or {},
    }
    if actions and not module.check_mode:
        result["instance"] = carry_out(client, spec, actions, observed, params) or {}
    return result


def carry_out(
    client: CofferClient,
    spec: InstanceSpec,
    actions: list[InstanceAction],
    observed: JSONObject | None,
    params: dict[str, Any],
) -> JSONObject | None:
    """Run the steps in order, waiting between them; returns the last view (None once
    deleted)."""
    view = observed
    timeout = float(params["wait_timeout"])
    for index, action in enumerate(actions):
        instance_id = "" if view is None else str(view["id"])
        view = step(client, spec, action, instance_id) or view
        instance_id = str((view or {}).get("id", instance_id))
        last = index == len(actions) - 1
        if action.change is InstanceChange.DELETE:
            if params["wait"]:
                wait_for_instance_deleted(client, instance_id, timeout)
            return None
        if params["wait"] or not last:
            view = wait_for_instance_idle(client, instance_id, timeout)
        else:
            view = client.get_instance(instance_id)
    return view


def step(
    client: CofferClient, spec: InstanceSpec, action: InstanceAction, instance_id: str
) -> JSONObject | None:
    """One API call; the new view when the call returns one."""
    change = action.change
    if change is InstanceChange.CREATE:
        return client.create_instance(
            spec.name,
            flavor=str(spec.flavor),
            datastore=spec.datastore,
            datastore_version=spec.datastore_version,
            volume_size=spec.volume_size,
            configuration=spec.configuration_id or None,
        )
    if change is InstanceChange.DELETE:
        client.delete_instance(instance_id)
    elif change is InstanceChange.DETACH_CONFIGURATION:
        client.detach_configuration(instance_id)
    elif change is InstanceChange.RESIZE_FLAVOR:
        client.resize_instance_flavor(instance_id, str(action.value))
    elif change is InstanceChange.RESIZE_VOLUME:
        client.resize_instance_volume(instance_id, int(action.value or 0))
    elif change is InstanceChange.ATTACH_CONFIGURATION:
        client.attach_configuration(instance_id, str(action.value))
    return None


def main() -> None:
    run_module(argument_spec(), apply)


if __name__ == "__main__":
    main()
