"""Value objects that cross the engine seam: what to run and what to create inside it.

They travel inside agent commands (as JSON) and are handed to engines as frozen pydantic
models. Passwords appear only here and in the sealed command payloads, never in logs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: what an engine's activity counter counts (``engines.base.EngineCounters.operations``)
ActivityKind = Literal["transactions", "queries", "commands"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InstanceSpec(_Frozen):
    """Everything an agent needs to run one engine instance."""

    instance_id: str
    engine: str = Field(description="engine registry name, e.g. 'postgresql'")
    version: str
    port: int
    bind_host: str = "127.0.0.1"
    ram_mb: int
    vcpus: int
    volume_gb: int
    parameters: dict[str, Any] = Field(default_factory=dict)
    #: set by the agent while the volume is nearly full: the engine must refuse writes
    #: (rendered by ``configure``, applied live by ``apply_parameters``)
    read_only: bool = False
    #: "primary" or "replica" while the instance is in a replica set (the agent then
    #: reports its replication state), None otherwise
    replication_role: str | None = None
    #: the USER logs switched on (``Catalog.guest_logs``): rendered by ``configure`` and
    #: applied live by ``apply_parameters``
    logs: tuple[str, ...] = ()


class DatabaseSpec(_Frozen):
    name: str
    character_set: str | None = None
    collate: str | None = None


class UserSpec(_Frozen):
    name: str
    host: str = "%"
    password: str | None = Field(default=None, repr=False)
    databases: tuple[str, ...] = ()


class UserView(_Frozen):
    name: str
    host: str = "%"
    databases: tuple[str, ...] = ()


class UserUpdate(_Frozen):
    """Attributes to change on one user; ``None`` means unchanged."""

    name: str | None = None
    host: str | None = None
    password: str | None = Field(default=None, repr=False)


class ParameterRule(_Frozen):
    """One configuration parameter a user may set through a configuration group.

    ``type`` is Trove's data type: ``integer``, ``float``, ``string`` or ``boolean``;
    ``min``/``max`` bound numbers, ``choices`` lists the allowed strings (if any).
    """

    name: str
    type: Literal["integer", "float", "string", "boolean"]
    restart_required: bool
    min: int | float | None = None
    max: int | float | None = None
    choices: tuple[str, ...] | None = None
    description: str = ""


class Probe(_Frozen):
    """One observation of a running engine."""

    accepting: bool
    detail: str = ""
