"""What the stack package raises; every message is one sentence a person can act on.

StackError              root: everything this package raises on purpose
├── TemplateError       the template (or a --parameter) is invalid; nothing was done
├── PlanRefused         the running resources cannot be brought to the template in
│                       place (e.g. a datastore change); nothing was done
└── StateError          the stack's state file cannot be read or written
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PlanRefused", "StackError", "StateError", "TemplateError"]


class StackError(Exception):
    """Root of the package's errors; ``str()`` is one line (problems joined with '; ')."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems: tuple[str, ...] = (
            (problems,) if isinstance(problems, str) else tuple(problems)
        )
        super().__init__("; ".join(self.problems))


class TemplateError(StackError):
    """The template or its parameters are invalid; ``problems`` lists every one found."""


class PlanRefused(StackError):
    """Some change the template asks for cannot be made in place; ``problems`` says which."""


class StateError(StackError):
    """The state file of a stack is unreadable, malformed or cannot be written."""
