"""Heat's intrinsic functions as far as stacks use them: ``get_param`` is substituted
while the template is read; ``get_resource`` and ``get_attr`` become ``ResourceRef`` and
``AttrRef`` nodes, resolved once the resources they name exist.

A mapping is a function call when it has exactly one key and that key is a Heat function
name. Heat functions other than these three (``str_replace``, ``list_join``, ...) are
refused by name rather than silently taken as data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FUNCTIONS",
    "AttrRef",
    "ResourceRef",
    "references",
    "substitute",
]

#: what a template may call
FUNCTIONS = ("get_param", "get_resource", "get_attr")
#: Heat functions this implementation refuses with a clear message
_UNSUPPORTED = frozenset(
    {
        "get_file",
        "str_replace",
        "str_replace_strict",
        "str_replace_vstrict",
        "list_join",
        "str_split",
        "digest",
        "repeat",
        "resource_facade",
        "map_merge",
        "map_replace",
        "list_concat",
        "list_concat_unique",
        "contains",
        "yaql",
        "equals",
        "if",
        "not",
        "and",
        "or",
        "filter",
        "make_url",
        "Fn::Select",
        "Fn::Join",
        "Fn::GetAtt",
        "Ref",
    }
)

PathItem = str | int


@dataclass(frozen=True)
class ResourceRef:
    """``{get_resource: name}``: the physical id of resource ``name``."""

    resource: str


@dataclass(frozen=True)
class AttrRef:
    """``{get_attr: [name, attribute, path...]}``: an attribute of resource ``name``,
    then indexed by ``path`` (list indices or mapping keys)."""

    resource: str
    attribute: str
    path: tuple[PathItem, ...] = ()


def _call(value: Any) -> tuple[str, Any] | None:
    """``(function, argument)`` if ``value`` is a function call."""
    if isinstance(value, dict) and len(value) == 1:
        key, arg = next(iter(value.items()))
        if isinstance(key, str) and (key in FUNCTIONS or key in _UNSUPPORTED):
            return key, arg
    return None


def index(value: Any, path: tuple[PathItem, ...], *, what: str) -> Any:
    """``value`` indexed by each item of ``path``; ``KeyError`` with a sentence if a step
    does not exist."""
    for step in path:
        in_list = (
            isinstance(value, list) and isinstance(step, int) and -len(value) <= step < len(value)
        )
        if not in_list and not (isinstance(value, dict) and step in value):
            raise KeyError(f"{what} has no item {step!r}")
        value = value[step]
    return value


def _path(items: list[Any]) -> tuple[PathItem, ...] | None:
    if all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in items):
        return tuple(items)
    return None


def substitute(value: Any, params: Mapping[str, Any], *, where: str, problems: list[str]) -> Any:
    """A copy of ``value`` with ``get_param`` replaced by the parameter's value and
    ``get_resource``/``get_attr`` by ref nodes. Each malformed or unsupported call adds
    a sentence naming ``where`` to ``problems`` and is replaced by None."""
    call = _call(value)
    if call is not None:
        return _substitute_call(*call, params, where=where, problems=problems)
    if isinstance(value, dict):
        return {
            k: substitute(v, params, where=f"{where}.{k}", problems=problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            substitute(v, params, where=f"{where}[{i}]", problems=problems)
            for i, v in enumerate(value)
        ]
    return value


def _substitute_call(
    function: str, arg: Any, params: Mapping[str, Any], *, where: str, problems: list[str]
) -> Any:
    if function == "get_param":
        items = arg if isinstance(arg, list) else [arg]
        path = _path(items)
        if not items or path is None or not isinstance(items[0], str):
            problems.append(f"{where}: get_param takes a parameter name, or [name, path...]")
            return None
        name = items[0]
        if name not in params:
            known = ", ".join(sorted(params)) or "none"
            problems.append(f"{where}: get_param names unknown parameter {name!r} (known: {known})")
            return None
        try:
            return index(params[name], path[1:], what=f"parameter {name!r}")
        except KeyError as exc:
            problems.append(f"{where}: get_param: {exc.args[0]}")
            return None
    if function == "get_resource":
        if not isinstance(arg, str) or not arg:
            problems.append(f"{where}: get_resource takes a resource name")
            return None
        return ResourceRef(arg)
    if function == "get_attr":
        path = _path(arg) if isinstance(arg, list) else None
        if (
            path is None
            or len(path) < 2
            or not isinstance(path[0], str)
            or not isinstance(path[1], str)
        ):
            problems.append(f"{where}: get_attr takes [resource, attribute, path...]")
            return None
        return AttrRef(path[0], path[1], path[2:])
    problems.append(
        f"{where}: the Heat function {function!r} is not supported "
        f"(supported: {', '.join(FUNCTIONS)})"
    )
    return None


def references(value: Any) -> Iterator[ResourceRef | AttrRef]:
    """Every ref node in ``value``, depth first."""
    if isinstance(value, (ResourceRef, AttrRef)):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)
