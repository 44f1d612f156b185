"""Ansible module coffer.dbaas.configuration: a Coffer configuration group."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.coffer.dbaas.plugins.module_utils.coffer_api import (
    ModuleResult,
    common_argument_spec,
    run_module,
)
from ansible_collections.coffer.dbaas.plugins.module_utils.configuration_plan import (
    ConfigurationAction,
    ConfigurationChange,
    ConfigurationWanted,
    decide_configuration,
)
from ansible_collections.coffer.dbaas.plugins.module_utils.plans import (
    State,
    describe,
    find_unique,
)

if TYPE_CHECKING:
    from coffer.client import CofferClient, JSONObject

DOCUMENTATION = r"""
module: configuration
short_description: Create, change or delete a Coffer configuration group
description:
  - Makes the configuration group with this name exist (or not) with exactly these
    parameter values. Changing the values of a group re-applies them to every instance it
    is attached to (the server refuses while one of them is busy).
  - Attach a group to an instance with the O(coffer.dbaas.instance#module:configuration)
    option of M(coffer.dbaas.instance).
  - The group is found by name, which must be unique in the project. A group still
    attached to an instance cannot be deleted.
author: Coffer developers
extends_documentation_fragment: [coffer.dbaas.coffer]
options:
  name:
    description: The group's name.
    type: str
    required: true
  values:
    description:
      - Every parameter of the group (any other is removed), with the types the engine
        expects (integers, floats, booleans, strings).
      - Left out, the values of an existing group are not managed (a new one starts empty).
      - Secret-looking parameters, which the API shows as C(***), count as unchanged.
    type: dict
  description:
    description: A description of the group.
    type: str
  datastore:
    description: The group's datastore (the server's default if left out); cannot change.
    type: str
  datastore_version:
    description: The group's datastore version (the default if left out); cannot change.
    type: str
"""

EXAMPLES = r"""
- name: Bigger sorts for the shop
  coffer.dbaas.configuration:
    name: shop-tuning
    datastore: postgresql
    datastore_version: "15"
    values:
      work_mem: 8192
"""

RETURN = r"""
configuration:
  description: The group's view with its values ({} when absent or deleted).
  returned: always
  type: dict
actions:
  description: What was done (or would be done).
  returned: always
  type: list
  elements: str
"""


def argument_spec() -> dict[str, Any]:
    spec = common_argument_spec()
    spec.update(
        name={"type": "str", "required": True},
        values={"type": "dict"},
        description={"type": "str"},
        datastore={"type": "str"},
        datastore_version={"type": "str"},
    )
    return spec


def find_configuration(client: CofferClient, name: str) -> JSONObject | None:
    found = find_unique(client.list_configurations(), name, kind="configuration group")
    return None if found is None else client.get_configuration(str(found["id"]))


def apply(module: AnsibleModule, client: CofferClient) -> ModuleResult:
    params = module.params
    wanted = ConfigurationWanted(
        name=params["name"],
        values=params["values"],
        description=params["description"],
        datastore=params["datastore"],
        datastore_version=params["datastore_version"],
    )
    observed = find_configuration(client, wanted.name)
    actions = decide_configuration(State(params["state"]), wanted, observed)
    result: ModuleResult = {
        "changed": bool(actions),
        "actions": [str(a) for a in actions],
        "msg": describe(f"configuration group {wanted.name}", actions),
        "configuration": observed or {},
    }
    if actions and not module.check_mode:
        result["configuration"] = carry_out(client, wanted, actions, observed) or {}
    return result


def carry_out(
    client: CofferClient,
    wanted: ConfigurationWanted,
    actions: list[ConfigurationAction],
    observed: JSONObject | None,
) -> JSONObject | None:
    """Create, delete, or change values and description in one update; the new view."""
    changes = {a.change for a in actions}
    if ConfigurationChange.CREATE in changes:
        return client.create_configuration(
            wanted.name,
            wanted.values or {},
            datastore=wanted.datastore,
            datastore_version=wanted.datastore_version,
            description=wanted.description,
        )
    assert observed is not None
    config_id = str(observed["id"])
    if ConfigurationChange.DELETE in changes:
        client.delete_configuration(config_id)
        return None
    client.update_configuration(
        config_id,
        values=wanted.values if ConfigurationChange.SET_VALUES in changes else None,
        description=(
            wanted.description if ConfigurationChange.SET_DESCRIPTION in changes else None
        ),
    )
    return client.get_configuration(config_id)


def main() -> None:
    run_module(argument_spec(), apply)


if __name__ == "__main__":
    main()
