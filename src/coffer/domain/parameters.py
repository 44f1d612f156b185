"""Validation of configuration-group values against an engine's parameter rules (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from coffer.contracts.engine import ParameterRule
from coffer.errors import UnprocessableEntity


def validate_values(rules: Iterable[ParameterRule], values: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``values`` checked against ``rules``; 422 naming the first offending key.

    Types are strict, as Trove's: an integer must be a JSON integer (not a boolean or a
    string), a float may be any number, a boolean must be true/false, a string must be
    one of the rule's choices when it has them.
    """
    by_name = {r.name: r for r in rules}
    if not by_name:
        raise UnprocessableEntity(
            "Configuration groups are not supported by this datastore version."
        )
    clean: dict[str, Any] = {}
    for key, value in values.items():
        rule = by_name.get(key)
        if rule is None:
            raise UnprocessableEntity(
                f"The configuration parameter {key} is not supported for this datastore."
            )
        clean[key] = _check(rule, value)
    return clean


def _check(rule: ParameterRule, value: Any) -> Any:
    key = rule.name
    if rule.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise UnprocessableEntity(
                f"The value provided for the configuration parameter {key} is not of type integer."
            )
    elif rule.type == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UnprocessableEntity(
                f"The value provided for the configuration parameter {key} is not of type float."
            )
        value = float(value)
    elif rule.type == "boolean":
        if not isinstance(value, bool):
            raise UnprocessableEntity(
                f"The value provided for the configuration parameter {key} is not of type boolean."
            )
    else:
        if not isinstance(value, str):
            raise UnprocessableEntity(
                f"The value provided for the configuration parameter {key} is not of type string."
            )
        if rule.choices is not None and value not in rule.choices:
            raise UnprocessableEntity(
                f"The value {value!r} for the configuration parameter {key} must be one of: "
                f"{', '.join(rule.choices)}."
            )
        return value
    if rule.min is not None and value < rule.min:
        raise UnprocessableEntity(
            f"The value for the configuration parameter {key} is less than the minimum "
            f"allowed: {rule.min}"
        )
    if rule.max is not None and value > rule.max:
        raise UnprocessableEntity(
            f"The value for the configuration parameter {key} is greater than the maximum "
            f"allowed: {rule.max}"
        )
    return value


def needs_restart(
    rules: Iterable[ParameterRule], before: Mapping[str, Any], after: Mapping[str, Any]
) -> bool:
    """Whether going from ``before`` to ``after`` changes a restart-required parameter."""
    restart = {r.name for r in rules if r.restart_required}
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    return bool(changed & restart)
