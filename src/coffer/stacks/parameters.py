"""A template's ``parameters``: their declarations, defaults, ``--parameter key=value``
overrides, and the type conversion and constraints Heat applies to them.

Types: ``string``, ``number`` (int when it is one, else float), ``boolean``,
``comma_delimited_list`` and ``json``. Constraints: ``allowed_values``, ``range``
(min/max), ``length`` (min/max, of a string or list) and ``allowed_pattern``; other
constraint kinds (``custom_constraint``) are accepted and not checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

__all__ = ["ParameterType", "parse_overrides", "resolve_parameters"]

_DECLARATION_KEYS = frozenset(
    {"type", "default", "description", "label", "hidden", "constraints", "immutable", "tags"}
)
_TRUE = frozenset({"true", "yes", "on", "1", "t", "y"})
_FALSE = frozenset({"false", "no", "off", "0", "f", "n"})


class ParameterType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    LIST = "comma_delimited_list"
    JSON = "json"


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a mapping (the value may hold ``=``); raises ``ValueError``
    for an item without ``=``, an empty key, or a key given twice."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--parameter {pair!r} is not KEY=VALUE")
        if key in out:
            raise ValueError(f"--parameter {key!r} is given twice")
        out[key] = value
    return out


def _convert(kind: ParameterType, value: Any) -> Any:
    """``value`` (from YAML or a command line string) as a value of ``kind``; raises
    ``ValueError`` with the reason."""
    if kind is ParameterType.STRING:
        if isinstance(value, (dict, list, bool)):
            raise ValueError("is not a string")
        return str(value)
    if kind is ParameterType.NUMBER:
        if isinstance(value, bool):
            raise ValueError("is not a number")
        if isinstance(value, (int, float)):
            return value
        text = str(value).strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise ValueError("is not a number") from None
    if kind is ParameterType.BOOLEAN:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("is not a boolean (true or false)")
    if kind is ParameterType.LIST:
        if isinstance(value, list):
            return [str(v) for v in value]
        text = str(value)
        return [item.strip() for item in text.split(",")] if text.strip() else []
    if isinstance(value, (dict, list)):
        return value
    try:
        decoded = json.loads(str(value))
    except ValueError:
        raise ValueError("is not JSON") from None
    if not isinstance(decoded, (dict, list)):
        raise ValueError("is not a JSON object or list")
    return decoded


def _constraint_problem(value: Any, constraint: Any) -> str | None:
    """Why ``value`` breaks ``constraint`` (a one-key mapping), or None."""
    if not isinstance(constraint, dict):
        return "has a constraint that is not a mapping"
    description = constraint.get("description")
    problem: str | None = None
    if "allowed_values" in constraint:
        allowed = constraint["allowed_values"]
        if isinstance(allowed, list) and value not in allowed:
            problem = f"must be one of {', '.join(map(str, allowed))}"
    elif "range" in constraint:
        bounds = constraint["range"] or {}
        low, high = bounds.get("min"), bounds.get("max")
        if isinstance(value, (int, float)) and (
            (low is not None and value < low) or (high is not None and value > high)
        ):
            problem = f"must be within {low if low is not None else '-inf'}..{high or 'inf'}"
    elif "length" in constraint:
        bounds = constraint["length"] or {}
        low, high = bounds.get("min"), bounds.get("max")
        size = len(value) if isinstance(value, (str, list, dict)) else None
        if size is not None and (
            (low is not None and size < low) or (high is not None and size > high)
        ):
            problem = f"must have a length within {low or 0}..{high or 'inf'}"
    elif "allowed_pattern" in constraint:
        pattern = str(constraint["allowed_pattern"])
        if isinstance(value, str) and re.fullmatch(pattern, value) is None:
            problem = f"must match {pattern!r}"
    if problem is not None and description:
        problem += f" ({description})"
    return problem


def resolve_parameters(
    declarations: Any, overrides: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """The value of every declared parameter (override, else default) and the problems
    found: a bad declaration, an unknown override, a missing value, a value of the
    wrong type or breaking a constraint. Hidden parameters' values never appear in a
    problem."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    if declarations is None:
        declarations = {}
    if not isinstance(declarations, dict):
        return {}, ["parameters must be a mapping of name to declaration"]
    for name in overrides:
        if name not in declarations:
            known = ", ".join(sorted(map(str, declarations))) or "none"
            problems.append(
                f"--parameter {name!r} is not declared by the template (declared: {known})"
            )
    for name, declaration in declarations.items():
        where = f"parameters.{name}"
        if not isinstance(declaration, dict):
            problems.append(f"{where} must be a mapping with a type")
            continue
        unknown = sorted(set(map(str, declaration)) - _DECLARATION_KEYS)
        if unknown:
            problems.append(f"{where} has unknown keys: {', '.join(unknown)}")
        try:
            kind = ParameterType(str(declaration.get("type")))
        except ValueError:
            kinds = ", ".join(t.value for t in ParameterType)
            problems.append(f"{where}.type must be one of {kinds}")
            continue
        if name in overrides:
            raw, source = overrides[name], f"--parameter {name}"
        elif "default" in declaration and declaration["default"] is not None:
            raw, source = declaration["default"], f"{where}.default"
        else:
            problems.append(f"parameter {name!r} has no default: give --parameter {name}=VALUE")
            continue
        shown = "the value" if declaration.get("hidden") else repr(raw)
        try:
            value = _convert(kind, raw)
        except ValueError as exc:
            problems.append(f"{source}: {shown} {exc}")
            continue
        constraints = declaration.get("constraints") or []
        if not isinstance(constraints, list):
            problems.append(f"{where}.constraints must be a list")
            continue
        broken = [p for c in constraints if (p := _constraint_problem(value, c)) is not None]
        if broken:
            problems.append(f"{source}: {shown} {'; '.join(broken)}")
            continue
        values[str(name)] = value
    return values, problems
