"""MariaDB's logs (``Catalog.guest_logs``): ``error``, the server's own log (its stderr,
which the agent sends to ``InstancePaths.log_file``), ``slow_query`` (``slow.log`` in the
data directory) and ``general`` (every statement, ``general.log`` there).

Switched on, ``slow_query`` turns ``slow_query_log`` on (whatever a configuration group
says) with ``long_query_time`` at ``SLOW_QUERY_S`` unless the group sets it; switched
off, the group's ``slow_query_log`` (default off) stands. ``general`` is Coffer's alone
(configuration groups may not name ``general_log``). Both apply live (``SET GLOBAL``).

Passwords: Coffer's sessions are outside both logs (``connection``: ``sql_log_off``
and a year-long ``long_query_time``, so not even ``CHANGE MASTER ... MASTER_PASSWORD``
of a replica is written) and send account passwords as hashes (``statements``).
Statements a tenant sends with a clear-text password (``IDENTIFIED BY '...'``) are
written to the general log as sent: MariaDB does not mask them.
"""

from __future__ import annotations

from pathlib import Path

from coffer.contracts.engine import InstanceSpec
from coffer.domain.guest_logs import LogDef, LogType
from coffer.engines.base import InstancePaths

__all__ = [
    "GENERAL_LOG_FILE",
    "GUEST_LOGS",
    "SLOW_LOG_FILE",
    "SLOW_QUERY_S",
    "MariaDBGuestLogs",
    "log_defaults",
    "log_switches",
]

GUEST_LOGS: tuple[LogDef, ...] = (
    LogDef("error", LogType.SYS, "the server's error log (errors, warnings, start and stop)"),
    LogDef("slow_query", LogType.USER, "statements slower than long_query_time"),
    LogDef("general", LogType.USER, "every connection and statement the server receives"),
)
SLOW_LOG_FILE = "slow.log"
GENERAL_LOG_FILE = "general.log"
#: ``long_query_time`` of an enabled ``slow_query`` log (Trove's default, 1000 ms)
SLOW_QUERY_S = 1.0


def log_defaults(spec: InstanceSpec) -> dict[str, float]:
    """Defaults the switched-on logs bring, which configuration groups may override."""
    return {"long_query_time": SLOW_QUERY_S} if "slow_query" in spec.logs else {}


def log_switches(spec: InstanceSpec, paths: InstancePaths) -> dict[str, bool | str]:
    """Settings the logs impose (groups cannot override them): the log files, and the
    switches of the logs that are on (and of ``general``, off too)."""
    switches: dict[str, bool | str] = {
        "slow_query_log_file": str(paths.data_dir / SLOW_LOG_FILE),
        "general_log_file": str(paths.data_dir / GENERAL_LOG_FILE),
        "general_log": "general" in spec.logs,
    }
    if "slow_query" in spec.logs:
        switches["slow_query_log"] = True
    return switches


class MariaDBGuestLogs:
    def path(self, paths: InstancePaths, spec: InstanceSpec, name: str) -> Path:
        files = {
            "error": paths.log_file,
            "slow_query": paths.data_dir / SLOW_LOG_FILE,
            "general": paths.data_dir / GENERAL_LOG_FILE,
        }
        return files[name]
