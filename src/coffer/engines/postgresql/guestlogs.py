"""PostgreSQL's logs (``Catalog.guest_logs``): ``error``, the server's own log, and
``slow_query``, statements slower than a threshold.

PostgreSQL writes both to one place: its stderr, which the agent sends to
``InstancePaths.log_file`` (``logging_collector`` stays off). So both logs read that file;
``slow_query`` only makes the server write the slow statements there
(``log_min_duration_statement``: a configuration group's value if it sets one of 0 or
more, else ``SLOW_QUERY_MS``). Disabled, the configuration group's value (if any) stands.

Passwords: Coffer's own statements carry no clear-text password (``admin`` sends SCRAM
verifiers computed client-side) and its sessions log no statement whatever the
settings (``connection``), so neither log holds one Coffer sent. ``log_statement``
stays ``none`` unless a configuration group sets it; a tenant's own ``ALTER ROLE ...
PASSWORD '<clear text>'`` is written to the log if it is slow or a group logs
statements, as PostgreSQL writes what it receives.
"""

from __future__ import annotations

from pathlib import Path

from coffer.contracts.engine import InstanceSpec
from coffer.domain.guest_logs import LogDef, LogType, slow_query_threshold
from coffer.engines.base import InstancePaths

__all__ = ["GUEST_LOGS", "SLOW_QUERY_MS", "PostgresGuestLogs", "log_settings"]

GUEST_LOGS: tuple[LogDef, ...] = (
    LogDef("error", LogType.SYS, "the server's log (errors, warnings, start and stop)"),
    LogDef("slow_query", LogType.USER, "statements slower than log_min_duration_statement"),
)
#: ``log_min_duration_statement`` of an enabled ``slow_query`` log (Trove's default)
SLOW_QUERY_MS = 1000


def log_settings(spec: InstanceSpec) -> dict[str, int]:
    """The settings the instance's switched-on logs add (over its parameters)."""
    return slow_query_threshold(
        spec.logs, spec.parameters, "log_min_duration_statement", SLOW_QUERY_MS
    )


class PostgresGuestLogs:
    """Both logs are the server's stderr file."""

    def path(self, paths: InstancePaths, spec: InstanceSpec, name: str) -> Path:
        if name not in {d.name for d in GUEST_LOGS}:
            raise KeyError(name)
        return paths.log_file
