"""Ansible module coffer.dbaas.user: a database user on a Coffer instance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.coffer.dbaas.plugins.module_utils.coffer_api import (
    ModuleResult,
    common_argument_spec,
    find_instance_id,
    run_module,
)
from ansible_collections.coffer.dbaas.plugins.module_utils.plans import State, describe
from ansible_collections.coffer.dbaas.plugins.module_utils.user_plan import (
    ANY_HOST,
    PasswordUpdate,
    UserAction,
    UserChange,
    UserWanted,
    decide_user,
    find_user,
)

if TYPE_CHECKING:
    from coffer.client import CofferClient, JSONObject

DOCUMENTATION = r"""
module: user
short_description: Create, change or delete a database user on a Coffer instance
description:
  - Makes the user with this name (and host) exist (or not) on the instance, with access
    to exactly the databases listed.
  - The API never shows a password, so an existing user's password is set only with
    O(update_password=always), which then reports a change on every run.
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
    description: The user's name.
    type: str
    required: true
  host:
    description: The host the user connects from (MariaDB); C(%), any host, if left out.
    type: str
  password:
    description: The password; needed to create the user. Never logged.
    type: str
  databases:
    description:
      - Every database the user may use (missing ones are granted, others revoked).
      - Left out, access is not managed.
    type: list
    elements: str
  update_password:
    description: C(on_create) sets the password only when creating the user; C(always) every run.
    type: str
    choices: [always, on_create]
    default: on_create
"""

EXAMPLES = r"""
- name: The application's user
  coffer.dbaas.user:
    instance: shop-db
    name: app
    password: "{{ vault_app_password }}"
    databases: [shop]
"""

RETURN = r"""
user:
  description: The user's entry (name, host, databases) afterwards ({} when absent).
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
        instance={"type": "str", "required": True},
        name={"type": "str", "required": True},
        host={"type": "str"},
        password={"type": "str", "no_log": True},
        databases={"type": "list", "elements": "str"},
        update_password={
            "type": "str",
            "default": "on_create",
            "choices": ["always", "on_create"],
            "no_log": False,
        },
    )
    return spec


def observe(client: CofferClient, instance_id: str, wanted: UserWanted) -> JSONObject | None:
    found = find_user(client.list_users(instance_id), wanted.name, wanted.host)
    return None if found is None else dict(found)


def apply(module: AnsibleModule, client: CofferClient) -> ModuleResult:
    params = module.params
    databases = params["databases"]
    wanted = UserWanted(
        name=params["name"],
        host=params["host"] or ANY_HOST,
        password=params["password"],
        databases=None if databases is None else tuple(databases),
        update_password=PasswordUpdate(params["update_password"]),
    )
    state = State(params["state"])
    instance_id = find_instance_id(client, params["instance"], missing_ok=state is State.ABSENT)
    observed = None if instance_id is None else observe(client, instance_id, wanted)
    actions = decide_user(state, wanted, observed)
    result: ModuleResult = {
        "changed": bool(actions),
        "actions": [str(a) for a in actions],
        "msg": describe(
            f"user {wanted.name}@{wanted.host} on instance {params['instance']}", actions
        ),
        "user": observed or {},
    }
    if instance_id is not None and actions and not module.check_mode:
        for action in actions:
            carry_out(client, instance_id, wanted, action)
        result["user"] = observe(client, instance_id, wanted) or {}
    return result


def carry_out(
    client: CofferClient, instance_id: str, wanted: UserWanted, action: UserAction
) -> None:
    from coffer.client import UserSpec  # coffer is importable here: run_module checked it

    host = None if wanted.host == ANY_HOST else wanted.host
    change = action.change
    if change is UserChange.CREATE:
        spec = UserSpec(wanted.name, str(wanted.password), host, action.databases)
        client.create_users(instance_id, [spec])
    elif change is UserChange.DELETE:
        client.delete_user(instance_id, wanted.name, host=host)
    elif change is UserChange.SET_PASSWORD:
        client.update_user(instance_id, wanted.name, host=host, new_password=wanted.password)
    elif change is UserChange.GRANT:
        client.grant_user_access(instance_id, wanted.name, action.databases, host=host)
    elif change is UserChange.REVOKE:
        for database in action.databases:
            client.revoke_user_access(instance_id, wanted.name, database, host=host)


def main() -> None:
    run_module(argument_spec(), apply)


if __name__ == "__main__":
    main()
