"""Instance logs (Trove's guest logs): what a datastore exposes, the action a request
asks for, and the status a log shows. Pure: no I/O.

Each datastore exposes a few logs (its catalog's ``guest_logs``): ``SYS`` logs are always
on (the engine's own server log, ``error``); ``USER`` logs are off until enabled
(``slow_query``, MariaDB's ``general``). A log is *published* by copying what was written
since the last publish to the instance's object store under ``prefix``; ``metafile`` (a
JSON object beside the prefix) remembers how far that went (``published`` bytes of the
source) and a digest of the source's first line, so a source that was replaced or cut
(rotated) is noticed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "LogAction",
    "LogDef",
    "LogStatus",
    "LogType",
    "derive_status",
    "find_log",
    "instance_prefix",
    "metafile_key",
    "object_prefix",
    "parse_action",
    "slow_query_threshold",
]


class LogType(StrEnum):
    #: always on: the engine's own log
    SYS = "SYS"
    #: off until a user enables it
    USER = "USER"


class LogStatus(StrEnum):
    """Trove's ``LogStatus`` names, as the API shows them."""

    #: a USER log that is off (nothing is being written to it)
    DISABLED = "Disabled"
    #: on, nothing written yet and nothing published
    ENABLED = "Enabled"
    #: on (or a SYS log) with no source to read yet
    UNAVAILABLE = "Unavailable"
    #: written to, nothing published yet
    READY = "Ready"
    #: everything written so far is published
    PUBLISHED = "Published"
    #: some is published, more was written since
    PARTIAL = "Partial"
    #: the source shrank or was replaced since the last publish: the next publish
    #: discards what was published and starts again
    ROTATED = "Rotated"


class LogAction(StrEnum):
    SHOW = "show"
    ENABLE = "enable"
    DISABLE = "disable"
    PUBLISH = "publish"
    DISCARD = "discard"


@dataclass(frozen=True)
class LogDef:
    """One log a datastore exposes."""

    name: str
    type: LogType
    description: str = ""


_ACTIONS = (LogAction.ENABLE, LogAction.DISABLE, LogAction.PUBLISH, LogAction.DISCARD)


def parse_action(flags: dict[str, int | None]) -> tuple[LogAction, ...]:
    """The actions a request's 0/1 ``flags`` ask for (``{"enable": 1}``...), in the order
    they run; none set to 1 means ``(show,)``. One action at most, except ``discard``
    with ``publish`` (discard what was published, then publish the log anew: what
    ``openstack database log set --discard --publish`` sends). Raises ``ValueError``
    naming the problem for any other pair (Trove refuses enable with disable) or a value
    that is not 0 or 1."""
    chosen: list[LogAction] = []
    for action in _ACTIONS:
        value = flags.get(action.value)
        if value is None or value == 0:
            continue
        if value != 1 or isinstance(value, bool):
            raise ValueError(f"{action.value} must be 0 or 1, not {value!r}")
        chosen.append(action)
    if not chosen:
        return (LogAction.SHOW,)
    if len(chosen) > 1 and set(chosen) != {LogAction.DISCARD, LogAction.PUBLISH}:
        names = " and ".join(a.value for a in chosen)
        raise ValueError(
            f"{names} cannot be asked together: ask for one action (or discard with publish)"
        )
    return tuple(sorted(chosen, key=lambda a: a is LogAction.PUBLISH))


def slow_query_threshold(
    logs: Collection[str], parameters: Mapping[str, object], setting: str, default: int
) -> dict[str, int]:
    """``{setting: threshold}`` while the ``slow_query`` log is on: the configuration's
    own value when it is a non-negative integer, else ``default``; ``{}`` while off."""
    if "slow_query" not in logs:
        return {}
    chosen = parameters.get(setting)
    if isinstance(chosen, int) and not isinstance(chosen, bool) and chosen >= 0:
        return {setting: chosen}
    return {setting: default}


def find_log(defs: tuple[LogDef, ...], name: str, datastore: str) -> LogDef:
    """The log named ``name``; ``KeyError`` with a message listing the known names."""
    for d in defs:
        if d.name == name:
            return d
    known = ", ".join(d.name for d in defs) or "none"
    raise KeyError(f"datastore {datastore} has no log {name!r}; its logs are: {known}")


def instance_prefix(project_id: str, instance_id: str) -> str:
    """Where everything published of one instance's logs lives (ends with ``/``)."""
    return f"{project_id}/{instance_id}/guest-logs/"


def object_prefix(project_id: str, instance_id: str, log_name: str) -> str:
    """Where the published parts of one log live in the store (ends with ``/``); its
    metafile (``metafile_key``) is beside it, under ``instance_prefix`` too."""
    return f"{instance_prefix(project_id, instance_id)}{log_name}/"


def metafile_key(prefix: str) -> str:
    """The metafile beside ``prefix``, as Trove names it (``<prefix>_metafile``)."""
    return prefix.rstrip("/") + "_metafile"


def derive_status(
    *, log_type: LogType, enabled: bool, size: int | None, published: int, rotated: bool
) -> LogStatus:
    """The status of a log whose source holds ``size`` bytes now (None: no source yet)
    of which ``published`` were published (``rotated``: the source is no longer the one
    published from)."""
    if log_type is LogType.USER and not enabled:
        return LogStatus.DISABLED
    if rotated:
        return LogStatus.ROTATED
    if not size:
        if published:
            return LogStatus.ROTATED
        if log_type is LogType.SYS:
            return LogStatus.UNAVAILABLE
        return LogStatus.ENABLED
    if size > published:
        return LogStatus.PARTIAL if published else LogStatus.READY
    return LogStatus.PUBLISHED
