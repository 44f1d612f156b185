"""Ansible module coffer.dbaas.backup: a backup of a Coffer instance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.coffer.dbaas.plugins.module_utils.backup_plan import decide_backup
from ansible_collections.coffer.dbaas.plugins.module_utils.coffer_api import (
    ModuleResult,
    common_argument_spec,
    run_module,
    wait_argument_spec,
    wait_for_backup,
)
from ansible_collections.coffer.dbaas.plugins.module_utils.plans import (
    PlanError,
    Presence,
    State,
    describe,
    find_unique,
)

if TYPE_CHECKING:
    from coffer.client import CofferClient, JSONObject

DOCUMENTATION = r"""
module: backup
short_description: Take or delete a backup of a Coffer instance
description:
  - Makes the backup with this name exist (or not). A backup is taken once; an existing
    one with this name is left as it is (and waited for, with O(wait)); one that FAILED
    fails the task until it is deleted with O(state=absent).
  - The backup is found by name, which must be unique in the project. Deleting a backup
    deletes the incrementals built on it too.
author: Coffer developers
extends_documentation_fragment: [coffer.dbaas.coffer]
options:
  name:
    description: The backup's name.
    type: str
    required: true
  instance:
    description: The instance to back up (name or id); needed to take the backup.
    type: str
  description:
    description: A description of a new backup.
    type: str
  incremental:
    description: Take an incremental backup on the instance's latest completed one.
    type: bool
    default: false
  wait:
    description: Wait until the backup is COMPLETED (or gone, when deleting).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 1800
"""

EXAMPLES = r"""
- name: A backup before the upgrade
  coffer.dbaas.backup:
    name: shop-before-upgrade
    instance: shop-db
"""

RETURN = r"""
backup:
  description: The backup's view ({} when absent or deleted).
  returned: always
  type: dict
actions:
  description: What was done (or would be done).
  returned: always
  type: list
  elements: str
"""


#: statuses of a backup still being taken
IN_PROGRESS = frozenset({"NEW", "BUILDING"})


def argument_spec() -> dict[str, Any]:
    spec = common_argument_spec()
    spec.update(wait_argument_spec(1800))
    spec.update(
        name={"type": "str", "required": True},
        instance={"type": "str"},
        description={"type": "str"},
        incremental={"type": "bool", "default": False},
    )
    return spec


def find_backup(client: CofferClient, name: str) -> JSONObject | None:
    found = find_unique(client.list_backups(), name, kind="backup")
    return None if found is None else client.get_backup(str(found["id"]))


def apply(module: AnsibleModule, client: CofferClient) -> ModuleResult:
    params = module.params
    name, state = params["name"], State(params["state"])
    instance_id = None
    if state is State.PRESENT:
        if params["instance"] is None:
            raise PlanError(f"instance is needed to take backup {name}")
        instance_id = str(client.find_instance(params["instance"])["id"])
    observed = find_backup(client, name)
    actions = decide_backup(state, name, observed, instance_id=instance_id)
    result: ModuleResult = {
        "changed": bool(actions),
        "actions": [str(a) for a in actions],
        "msg": describe(f"backup {name}", actions),
        "backup": observed or {},
    }
    if module.check_mode:
        return result
    timeout = float(params["wait_timeout"])
    if not actions:
        if observed is not None and params["wait"] and observed.get("status") in IN_PROGRESS:
            result["backup"] = wait_for_backup(client, str(observed["id"]), timeout)
        return result
    if actions[0] is Presence.DELETE:
        assert observed is not None
        client.delete_backup(str(observed["id"]))
        if params["wait"]:
            wait_for_backup(client, str(observed["id"]), timeout, deleted=True)
        result["backup"] = {}
        return result
    view = client.create_backup(
        str(instance_id),
        name,
        description=params["description"],
        incremental=params["incremental"],
    )
    if params["wait"]:
        view = wait_for_backup(client, str(view["id"]), timeout) or view
    result["backup"] = view
    return result


def main() -> None:
    run_module(argument_spec(), apply)


if __name__ == "__main__":
    main()
