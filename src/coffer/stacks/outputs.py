"""Resource attributes (``get_attr``) and output values, read from the server's views.

Instance attributes: ``hostname`` (the address), ``port``, ``ip`` (Trove's list of
addresses) and ``href`` (the ``self`` link). Cluster attributes: ``instances`` (the
member ids) and ``ip`` (the members' addresses). Pure: the views are given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coffer.stacks.intrinsics import AttrRef, ResourceRef, index
from coffer.stacks.resources import ResourceType
from coffer.stacks.template import Stack

__all__ = ["attribute", "resolve_outputs"]

JSONObject = dict[str, Any]


def attribute(kind: ResourceType, view: Mapping[str, Any], name: str) -> Any:
    """Attribute ``name`` of a resource of type ``kind`` whose server view is ``view``."""
    if kind is ResourceType.CLUSTER:
        if name == "instances":
            members = view.get("instances") or []
            return [m.get("id") for m in members if isinstance(m, dict)]
        return view.get("ip")
    if name == "href":
        for link in view.get("links") or ():
            if isinstance(link, dict) and link.get("rel") == "self":
                return link.get("href")
        return None
    return view.get(name)


def _resolve(value: Any, stack: Stack, views: Mapping[str, JSONObject]) -> Any:
    if isinstance(value, ResourceRef):
        view = views.get(value.resource)
        return view.get("id") if view is not None else None
    if isinstance(value, AttrRef):
        view = views.get(value.resource)
        if view is None:
            return None
        found = attribute(stack.resource(value.resource).type, view, value.attribute)
        try:
            return index(found, value.path, what=f"{value.resource}.{value.attribute}")
        except KeyError:
            return None
    if isinstance(value, dict):
        return {k: _resolve(v, stack, views) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, stack, views) for v in value]
    return value


def resolve_outputs(stack: Stack, views: Mapping[str, JSONObject]) -> dict[str, Any]:
    """Every output's value; a reference to a resource without a view (or a path that
    does not exist in the attribute) resolves to None, as Heat shows an unavailable
    attribute."""
    return {output.name: _resolve(output.value, stack, views) for output in stack.outputs}
