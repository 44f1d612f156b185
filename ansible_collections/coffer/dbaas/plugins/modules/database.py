"""Ansible module coffer.dbaas.database: a database on a Coffer instance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.coffer.dbaas.plugins.module_utils.coffer_api import (
    ModuleResult,
    common_argument_spec,
    find_instance_id,
    run_module,
)
from ansible_collections.coffer.dbaas.plugins.module_utils.plans import (
    Presence,
    State,
    decide_presence,
    describe,
)

if TYPE_CHECKING:
    from coffer.client import CofferClient

DOCUMENTATION = r"""
module: database
short_description: Create or delete a database on a Coffer instance
description:
  - Makes the database with this name exist (or not) on the instance. An existing
    database is left as it is (its character set and collation are used only to create it).
  - The instance must be ACTIVE; create it with M(coffer.dbaas.instance) and
    O(coffer.dbaas.instance#module:wait=true).
author: Coffer developers
extends_documentation_fragment: [coffer.dbaas.coffer]
options:
  instance:
    description: The instance (name or id).
    type: str
    required: true
  name:
    description: The database's name.
    type: str
    required: true
  character_set:
    description: Character set of a new database (the engine's default if left out).
    type: str
  collate:
    description: Collation of a new database (the engine's default if left out).
    type: str
"""

EXAMPLES = r"""
- name: The shop database
  coffer.dbaas.database:
    instance: shop-db
    name: shop
"""

RETURN = r"""
databases:
  description: The names of the instance's databases afterwards (before, in check mode).
  returned: always
  type: list
  elements: str
actions:
  description: What was done (or would be done).
  returned: always
  type: list
  elements: str
"""


def argument_spec() -> dict[str, Any]:
    spec = common_argument_spec()
    spec.update(
        instance={"type": "str", "required": True},
        name={"type": "str", "required": True},
        character_set={"type": "str"},
        collate={"type": "str"},
    )
    return spec


def database_names(client: CofferClient, instance_id: str) -> list[str]:
    return sorted(str(db.get("name")) for db in client.list_databases(instance_id))


def apply(module: AnsibleModule, client: CofferClient) -> ModuleResult:
    params = module.params
    name, state = params["name"], State(params["state"])
    instance_id = find_instance_id(client, params["instance"], missing_ok=state is State.ABSENT)
    names = [] if instance_id is None else database_names(client, instance_id)
    actions = decide_presence(state, exists=name in names)
    result: ModuleResult = {
        "changed": bool(actions),
        "actions": [str(a) for a in actions],
        "msg": describe(f"database {name} on instance {params['instance']}", actions),
        "databases": names,
    }
    if instance_id is None or not actions or module.check_mode:
        return result
    if actions[0] is Presence.CREATE:
        client.create_databases(
            instance_id, [name], character_set=params["character_set"], collate=params["collate"]
        )
    else:
        client.delete_database(instance_id, name)
    result["databases"] = database_names(client, instance_id)
    return result


def main() -> None:
    run_module(argument_spec(), apply)


if __name__ == "__main__":
    main()
