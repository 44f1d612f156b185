"""Wire shapes of Trove's instance log routes (``{t}/instances/{id}/log``), shared by the
API (request validation, OpenAPI) and the client.

The request is Trove's ``guest_log`` schema: a log ``name`` and one of the actions
``enable``, ``disable``, ``publish``, ``discard`` set to the integer 1 (0 or an absent
key: not asked), or ``discard`` with ``publish`` (discard, then publish anew). Only the
name means "show". Unknown keys are refused.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["GuestLogAction", "GuestLogList", "GuestLogReply", "GuestLogView"]

#: 0 or 1 as a JSON integer (Trove's log flags are integers, not booleans)
Flag = Annotated[int, Field(ge=0, le=1, strict=True)]


class GuestLogAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=64, strict=True)]
    enable: Flag | None = None
    disable: Flag | None = None
    publish: Flag | None = None
    discard: Flag | None = None


class GuestLogView(BaseModel):
    """Trove's GuestLog object. ``published`` and ``pending`` are byte counts of the
    log's source; ``container`` and ``prefix`` say where published parts are
    (``"None"`` until something is published, as Trove shows it); ``metafile`` is the
    object recording how far publishing went."""

    name: str
    type: Literal["SYS", "USER"]
    status: Literal[
        "Disabled", "Enabled", "Unavailable", "Ready", "Published", "Partial", "Rotated"
    ]
    published: int = Field(ge=0)
    pending: int = Field(ge=0)
    container: str
    prefix: str
    metafile: str


class GuestLogList(BaseModel):
    logs: list[GuestLogView]


class GuestLogReply(BaseModel):
    log: GuestLogView
