"""Reading a Heat-style template into a ``Stack``: every check that needs no server.

A template is YAML with ``heat_template_version`` (a Heat version date or release name),
optional ``description``, ``parameter_groups``, ``parameters``, ``resources`` (each with
``type``, ``properties`` and optional ``depends_on``) and ``outputs`` (each with
``value`` and optional ``description``). ``read_template`` reports every problem it finds
at once in one ``TemplateError``: a template that raises it has caused nothing to happen.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from coffer.stacks.errors import TemplateError
from coffer.stacks.graph import find_cycle
from coffer.stacks.intrinsics import AttrRef, ResourceRef, references, substitute
from coffer.stacks.parameters import resolve_parameters
from coffer.stacks.resources import (
    ClusterSpec,
    InstanceSpec,
    ResourceType,
    validate_properties,
)

__all__ = ["ATTRIBUTES", "Output", "Resource", "Stack", "read_template", "validate_stack_name"]

HEAT_VERSIONS = frozenset(
    {
        "2013-05-23",
        "2014-10-16",
        "2015-04-30",
        "2015-10-15",
        "2016-04-08",
        "2016-10-14",
        "2017-02-24",
        "2017-09-01",
        "2018-03-02",
        "2018-08-31",
        "2021-04-16",
        "newton",
        "ocata",
        "pike",
        "queens",
        "rocky",
        "wallaby",
    }
)
_TOP_KEYS = frozenset(
    {
        "heat_template_version",
        "description",
        "parameter_groups",
        "parameters",
        "resources",
        "outputs",
    }
)
_RESOURCE_KEYS = frozenset({"type", "properties", "depends_on"})
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,99}$")
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
#: what ``get_attr`` may ask of each type
ATTRIBUTES: Mapping[ResourceType, frozenset[str]] = {
    ResourceType.INSTANCE: frozenset({"hostname", "href", "port", "ip"}),
    ResourceType.CLUSTER: frozenset({"instances", "ip"}),
}


@dataclass(frozen=True)
class Resource:
    """One resource: its template name, type, validated spec and the resources it
    needs first (``get_resource`` targets and ``depends_on``)."""

    name: str
    type: ResourceType
    spec: InstanceSpec | ClusterSpec
    depends_on: frozenset[str]


@dataclass(frozen=True)
class Output:
    name: str
    value: Any
    description: str | None = None


@dataclass(frozen=True)
class Stack:
    """A validated template: resources in template order, outputs, parameter values."""

    name: str
    resources: tuple[Resource, ...]
    outputs: tuple[Output, ...]
    description: str | None = None

    def resource(self, name: str) -> Resource:
        for resource in self.resources:
            if resource.name == name:
                return resource
        raise KeyError(name)

    @property
    def depends(self) -> dict[str, frozenset[str]]:
        return {r.name: r.depends_on for r in self.resources}


def validate_stack_name(name: str) -> str:
    """``name`` if it is a valid stack name (a letter, then letters, digits, ``_.-``,
    at most 100 characters); else ``TemplateError``."""
    if not _NAME.match(name):
        raise TemplateError(
            f"stack name {name!r} is not valid: start with a letter, then use letters, "
            "digits, '_', '.' or '-' (at most 100 characters); give --name"
        )
    return name


def _load(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or "cannot be parsed"
        raise TemplateError(f"the template is not valid YAML{where}: {reason}") from None
    if not isinstance(data, dict):
        raise TemplateError("the template must be a YAML mapping with heat_template_version")
    return data


def _check_version(data: Mapping[str, Any], problems: list[str]) -> None:
    version = data.get("heat_template_version")
    if isinstance(version, datetime.date):
        version = version.isoformat()
    if version is None:
        problems.append("heat_template_version is required (e.g. 2021-04-16)")
    elif str(version) not in HEAT_VERSIONS:
        problems.append(
            f"heat_template_version {version!s} is not a Heat template version "
            "(e.g. 2018-08-31, 2021-04-16 or wallaby)"
        )


def _depends_on(raw: Any, where: str, problems: list[str]) -> set[str]:
    if raw is None:
        return set()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        problems.append(f"{where}.depends_on must be a resource name or a list of them")
        return set()
    return set(items)


def _check_refs(
    value: Any,
    types: Mapping[str, ResourceType],
    declared: set[str],
    where: str,
    problems: list[str],
) -> set[str]:
    """The resources ``value`` refers to; adds a sentence per undeclared resource or
    unknown attribute (resources declared with a bad type are reported elsewhere)."""
    named: set[str] = set()
    for ref in references(value):
        if ref.resource not in declared:
            known = ", ".join(sorted(declared)) or "none"
            problems.append(f"{where} refers to unknown resource {ref.resource!r} (known: {known})")
            continue
        named.add(ref.resource)
        if isinstance(ref, AttrRef) and ref.resource in types:
            allowed = ATTRIBUTES[types[ref.resource]]
            if ref.attribute not in allowed:
                problems.append(
                    f"{where}: {types[ref.resource].value} {ref.resource!r} has no attribute "
                    f"{ref.attribute!r} (it has: {', '.join(sorted(allowed))})"
                )
    return named


def _resource_types(resources: Mapping[Any, Any], problems: list[str]) -> dict[str, ResourceType]:
    types: dict[str, ResourceType] = {}
    for name, body in resources.items():
        where = f"resources.{name}"
        if not isinstance(name, str) or not _RESOURCE_NAME.match(name):
            problems.append(f"{where}: resource names use letters, digits, '_', '.', '-'")
            continue
        if not isinstance(body, dict):
            problems.append(f"{where} must be a mapping with a type")
            continue
        unknown = sorted(str(k) for k in body if k not in _RESOURCE_KEYS)
        if unknown:
            problems.append(
                f"{where} has unknown keys: {', '.join(unknown)} "
                f"(allowed: {', '.join(sorted(_RESOURCE_KEYS))})"
            )
        try:
            types[name] = ResourceType(str(body.get("type")))
        except ValueError:
            supported = ", ".join(t.value for t in ResourceType)
            problems.append(
                f"{where}.type {body.get('type')!r} is not a supported resource type "
                f"(supported: {supported})"
            )
    return types


def read_template(
    text: str, *, stack_name: str, parameters: Mapping[str, str] | None = None
) -> Stack:
    """The validated ``Stack`` of template ``text`` with ``parameters`` overriding the
    defaults; ``TemplateError`` listing every problem otherwise. Pure: no I/O."""
    validate_stack_name(stack_name)
    data = _load(text)
    problems: list[str] = []
    _check_version(data, problems)
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        problems.append(f"the template has unknown sections: {', '.join(unknown)}")
    values, param_problems = resolve_parameters(data.get("parameters"), parameters or {})
    problems += param_problems
    raw_resources = data.get("resources")
    if not isinstance(raw_resources, dict) or not raw_resources:
        problems.append("resources must be a mapping holding at least one resource")
        raw_resources = {}
    types = _resource_types(raw_resources, problems)
    declared = {str(name) for name in raw_resources}
    resources: list[Resource] = []
    for name, kind in types.items():
        body = raw_resources[name]
        where = f"resources.{name}.properties"
        raw_props = body.get("properties") or {}
        if not isinstance(raw_props, dict):
            problems.append(f"{where} must be a mapping")
            continue
        props = substitute(raw_props, values, where=where, problems=problems)
        named = _check_refs(props, types, declared, where, problems)
        for ref in references(props):
            if isinstance(ref, ResourceRef) and types.get(ref.resource) is ResourceType.CLUSTER:
                problems.append(
                    f"{where}: get_resource {ref.resource!r} is a cluster, not an instance"
                )
        depends = named | _depends_on(body.get("depends_on"), f"resources.{name}", problems)
        for dep in sorted(depends - declared):
            problems.append(f"resources.{name}.depends_on names unknown resource {dep!r}")
        if name in depends:
            problems.append(f"resources.{name} depends on itself")
        spec = validate_properties(
            kind, props, physical_name=f"{stack_name}-{name}", where=where, problems=problems
        )
        if spec is not None:
            resources.append(Resource(name, kind, spec, frozenset(depends & set(types))))
    cycle = find_cycle({r.name: set(r.depends_on) - {r.name} for r in resources})
    if cycle is not None:
        problems.append(f"the resources depend on each other in a cycle: {' -> '.join(cycle)}")
    outputs = _outputs(data.get("outputs"), values, types, declared, problems)
    if problems:
        raise TemplateError(problems)
    description = data.get("description")
    return Stack(
        stack_name,
        tuple(resources),
        outputs,
        description=str(description) if description is not None else None,
    )


def _outputs(
    raw: Any,
    values: Mapping[str, Any],
    types: Mapping[str, ResourceType],
    declared: set[str],
    problems: list[str],
) -> tuple[Output, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        problems.append("outputs must be a mapping of name to {value, description}")
        return ()
    out: list[Output] = []
    for name, body in raw.items():
        where = f"outputs.{name}"
        if not isinstance(body, dict) or "value" not in body:
            problems.append(f"{where} must be a mapping with a value")
            continue
        extra = sorted(str(k) for k in body if k not in {"value", "description"})
        if extra:
            problems.append(f"{where} has unknown keys: {', '.join(extra)}")
        value = substitute(body["value"], values, where=f"{where}.value", problems=problems)
        _check_refs(value, types, declared, f"{where}.value", problems)
        description = body.get("description")
        out.append(Output(str(name), value, str(description) if description else None))
    return tuple(out)
