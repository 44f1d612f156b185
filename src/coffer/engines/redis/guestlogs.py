"""Redis's logs (``Catalog.guest_logs``): ``error``, the server's own log (its stdout,
which the agent sends to ``InstancePaths.log_file``; Redis writes no password there)."""

from __future__ import annotations

from pathlib import Path

from coffer.contracts.engine import InstanceSpec
from coffer.domain.guest_logs import LogDef, LogType
from coffer.engines.base import InstancePaths

__all__ = ["GUEST_LOGS", "RedisGuestLogs"]

GUEST_LOGS: tuple[LogDef, ...] = (
    LogDef("error", LogType.SYS, "the server's log (warnings, start, stop, persistence)"),
)


class RedisGuestLogs:
    def path(self, paths: InstancePaths, spec: InstanceSpec, name: str) -> Path:
        if name != "error":
            raise KeyError(name)
        return paths.log_file
