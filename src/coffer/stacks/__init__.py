"""Heat-style stack templates: ``OS::Trove::Instance`` and ``OS::Trove::Cluster``
resources created, updated in place and deleted to match a YAML template.

- ``template``: reading and validating a template (parameters, intrinsics, resources,
  outputs, dependency cycles); pure.
- ``plan``: ``decide(stack, observation)`` into typed actions, or refusals; pure.
- ``state``: the state file mapping a stack's resources to physical ids.
- ``runner``: observing, applying, showing and deleting through ``CofferClient``.
"""

from coffer.stacks.errors import PlanRefused, StackError, StateError, TemplateError
from coffer.stacks.parameters import parse_overrides
from coffer.stacks.plan import Observation, Plan, decide
from coffer.stacks.resources import ResourceType
from coffer.stacks.runner import ResourceResult, StackReport, StackRunner
from coffer.stacks.state import StateStore
from coffer.stacks.template import Stack, read_template, validate_stack_name

__all__ = [
    "Observation",
    "Plan",
    "PlanRefused",
    "ResourceResult",
    "ResourceType",
    "Stack",
    "StackError",
    "StackReport",
    "StackRunner",
    "StateError",
    "StateStore",
    "TemplateError",
    "decide",
    "parse_overrides",
    "read_template",
    "validate_stack_name",
]
