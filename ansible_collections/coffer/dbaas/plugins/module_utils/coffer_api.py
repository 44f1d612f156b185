"""What every Coffer module shares on the Ansible side: options, the client, errors, waits.

Options common to all modules: ``endpoint`` (the project endpoint
``http://H:P/v1.0/<project_id>``, default ``$COFFER_ENDPOINT``), ``token`` (default
``$COFFER_TOKEN``, never logged) and ``api_timeout`` (seconds per request).

``run_module`` is each module's ``main``: it builds the ``AnsibleModule``, opens a
``CofferClient``, calls the module's ``apply(module, client)`` and exits with its result.
Failures become ``fail_json``: an API error with the server's own message (plus its
``status`` and ``fault``), a ``PlanError`` or any other client error with its one-line
message. Passwords never reach a message: the client keeps them out of its errors and the
options that carry them are ``no_log``.

Modules that wait (``wait``, ``wait_timeout``: seconds for each wait) use the ``wait_for_*``
helpers here. Modules import ``coffer`` only through this module (and for type checking),
so a Python without it gets a clear failure instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible_collections.coffer.dbaas.plugins.module_utils.plans import PlanError

try:
    from coffer.client import (
        CofferAPIError,
        CofferClient,
        CofferClientError,
        JSONObject,
        WaitUntil,
    )
except ImportError as exc:  # reported by run_module, as Ansible modules do
    COFFER_IMPORT_ERROR: ImportError | None = exc
else:
    COFFER_IMPORT_ERROR = None

__all__ = [
    "RESTART_REQUIRED",
    "Apply",
    "ModuleResult",
    "common_argument_spec",
    "find_instance_id",
    "run_module",
    "wait_argument_spec",
    "wait_for_backup",
    "wait_for_instance_deleted",
    "wait_for_instance_idle",
]

ModuleResult = dict[str, Any]
#: A module's body: ``(module, client) -> result`` (``changed`` and what it returns).
Apply = Callable[[AnsibleModule, "CofferClient"], ModuleResult]

#: the status of an instance that is idle but needs a restart for its configuration to apply
RESTART_REQUIRED = "RESTART_REQUIRED"
ENDPOINT_ENV = "COFFER_ENDPOINT"
TOKEN_ENV = "COFFER_TOKEN"


def common_argument_spec() -> dict[str, Any]:
    """The options every module takes (a fresh dict: callers add their own to it)."""
    return {
        "endpoint": {
            "type": "str",
            "required": True,
            "fallback": (env_fallback, [ENDPOINT_ENV]),
        },
        "token": {
            "type": "str",
            "required": True,
            "no_log": True,
            "fallback": (env_fallback, [TOKEN_ENV]),
        },
        "api_timeout": {"type": "float", "default": 30.0},
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    }


def find_instance_id(client: CofferClient, ref: str, *, missing_ok: bool) -> str | None:
    """The id of the instance whose id, or else unique name, is ``ref``. None when there
    is none and ``missing_ok`` (what lives on a missing instance is absent too); otherwise
    the client's 404 error."""
    try:
        return str(client.find_instance(ref)["id"])
    except CofferAPIError as exc:
        if missing_ok and exc.not_found:
            return None
        raise


def wait_argument_spec(default_timeout: int) -> dict[str, Any]:
    """``wait`` (default true) and ``wait_timeout`` (seconds, for each wait)."""
    return {
        "wait": {"type": "bool", "default": True},
        "wait_timeout": {"type": "int", "default": default_timeout},
    }


class _Idle(Exception):
    """Ends a wait early: the instance is idle in a state other than ready."""

    def __init__(self, view: JSONObject) -> None:
        super().__init__("idle")
        self.view = view


def wait_for_instance_idle(client: CofferClient, instance_id: str, timeout: float) -> JSONObject:
    """Until the instance is ACTIVE and HEALTHY, or RESTART_REQUIRED (idle too: it waits
    for a restart the user asks for); returns its view. May block up to ``timeout``
    seconds; raises the client's wait errors (ERROR, deadline)."""

    def stop_when_restart_required(view: JSONObject, _elapsed: float) -> None:
        if view.get("status") == RESTART_REQUIRED:
            raise _Idle(view)

    try:
        return client.wait_for_instance(
            instance_id,
            until=WaitUntil.READY,
            timeout=timeout,
            interval=1.0,
            on_progress=stop_when_restart_required,
        )
    except _Idle as idle:
        return idle.view


def wait_for_instance_deleted(client: CofferClient, instance_id: str, timeout: float) -> None:
    """Until GET answers 404; may block up to ``timeout`` seconds."""
    client.wait_for_instance(instance_id, until=WaitUntil.DELETED, timeout=timeout, interval=1.0)


def wait_for_backup(
    client: CofferClient, backup_id: str, timeout: float, *, deleted: bool = False
) -> JSONObject | None:
    """Until the backup is COMPLETED (its view) or, with ``deleted``, gone (None); may block
    up to ``timeout`` seconds. A failed backup raises the client's
    ``CofferBackupFailedError`` with the server's reason."""
    if deleted:
        client.wait_for_backup(backup_id, until=WaitUntil.DELETED, timeout=timeout, interval=1.0)
        return None
    return client.wait_for_backup(backup_id, until=WaitUntil.READY, timeout=timeout, interval=1.0)


def run_module(argument_spec: dict[str, Any], apply: Apply, **module_kwargs: Any) -> NoReturn:
    """Parse the options, run ``apply`` with a client, and exit (never returns)."""
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, **module_kwargs)
    if COFFER_IMPORT_ERROR is not None:
        module.fail_json(
            msg=missing_required_lib(f"coffer (for the Python at {sys.executable})"),
            exception=str(COFFER_IMPORT_ERROR),
        )
    params = module.params
    try:
        with CofferClient(
            params["endpoint"], params["token"], timeout=params["api_timeout"]
        ) as client:
            result = apply(module, client)
    except CofferAPIError as exc:
        module.fail_json(msg=exc.message, status=exc.status, fault=exc.fault)
    except (CofferClientError, PlanError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)
    raise AssertionError("exit_json returned")  # for type checkers: it exits
