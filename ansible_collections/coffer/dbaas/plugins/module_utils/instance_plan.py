"""The instance module's plan: desired instance vs the API's view, as typed actions (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ansible_collections.coffer.dbaas.plugins.module_utils.plans import PlanError, State

__all__ = ["InstanceAction", "InstanceChange", "InstanceSpec", "decide_instance"]


class InstanceChange(StrEnum):
    CREATE = "create"
    DELETE = "delete"
    DETACH_CONFIGURATION = "detach configuration group"
    RESIZE_FLAVOR = "resize flavor to"
    RESIZE_VOLUME = "resize volume to"
    ATTACH_CONFIGURATION = "attach configuration group"


@dataclass(frozen=True)
class InstanceAction:
    """One step; ``value`` is the flavor, the volume size (GB) or the configuration group
    id the step needs (None for the others)."""

    change: InstanceChange
    value: str | int | None = None

    def __str__(self) -> str:
        return str(self.change) if self.value is None else f"{self.change} {self.value}"


@dataclass(frozen=True)
class InstanceSpec:
    """What the task asks for; None means "not managed" (keep what is there).

    ``flavor`` is compared with the view's ``flavor.id``, so for an existing instance the
    caller passes the flavor's id (resolved from a name); for a new one, what the task
    gave. ``configuration_id`` ``""`` means "no group attached".
    """

    name: str
    flavor: str | None = None
    volume_size: int | None = None
    datastore: str | None = None
    datastore_version: str | None = None
    configuration_id: str | None = None


def decide_instance(
    state: State, spec: InstanceSpec, observed: Mapping[str, Any] | None
) -> list[InstanceAction]:
    """The steps from ``observed`` (the instance's detail view, None if there is none) to
    ``spec``, in the order they must run: a group is detached before another is attached,
    and the server takes one operation at a time, so the caller waits between steps.

    Raises ``PlanError`` for what no step can do: create without a flavor, change the
    datastore or its version, shrink the volume.
    """
    if state is State.ABSENT:
        return [] if observed is None else [InstanceAction(InstanceChange.DELETE)]
    if observed is None:
        if spec.flavor is None:
            raise PlanError(f"flavor is needed to create instance {spec.name}")
        return [InstanceAction(InstanceChange.CREATE)]
    _refuse_datastore_change(spec, observed)
    actions: list[InstanceAction] = []
    attached = _attached_configuration(observed)
    wanted = spec.configuration_id
    if wanted is not None and attached is not None and wanted != attached:
        actions.append(InstanceAction(InstanceChange.DETACH_CONFIGURATION))
    flavor = observed.get("flavor") or {}
    if spec.flavor is not None and spec.flavor != str(flavor.get("id")):
        actions.append(InstanceAction(InstanceChange.RESIZE_FLAVOR, spec.flavor))
    size = int((observed.get("volume") or {}).get("size") or 0)
    if spec.volume_size is not None and spec.volume_size != size:
        if spec.volume_size < size:
            raise PlanError(
                f"the volume of instance {spec.name} is {size} GB and cannot shrink to "
                f"{spec.volume_size} GB"
            )
        actions.append(InstanceAction(InstanceChange.RESIZE_VOLUME, spec.volume_size))
    if wanted and wanted != attached:
        actions.append(InstanceAction(InstanceChange.ATTACH_CONFIGURATION, wanted))
    return actions


def _attached_configuration(observed: Mapping[str, Any]) -> str | None:
    group = observed.get("configuration")
    return str(group["id"]) if isinstance(group, Mapping) and group.get("id") else None


def _refuse_datastore_change(spec: InstanceSpec, observed: Mapping[str, Any]) -> None:
    store = observed.get("datastore") or {}
    kind, version = store.get("type"), store.get("version")
    if spec.datastore is not None and spec.datastore != kind:
        raise PlanError(
            f"instance {spec.name} is a {kind} instance; its datastore cannot change to "
            f"{spec.datastore} (delete it and create a new one)"
        )
    known = {str(version), str(store.get("version_number"))}
    if spec.datastore_version is not None and spec.datastore_version not in known:
        raise PlanError(
            f"instance {spec.name} runs {kind} {version}; its datastore version cannot "
            f"change to {spec.datastore_version}"
        )
