"""Redis's logs (``Catalog.guest_logs``): ``error``, the server's own log (its stdout,
which the agent sends to ``InstancePaths.log_file``), and ``slow_query``, Redis's slow
log.

Redis keeps its slow log in memory only (``SLOWLOG GET``, the last
``slowlog-max-len`` entries). While ``slow_query`` is on, each time the agent reads it
(``path``: at every show and publish) the entries it has not written yet are appended
to ``<root>/slowlog.log`` as text lines; ``<root>/slowlog.json`` remembers the last
entry written and the server's ``run_id`` (a restarted server numbers its entries from
0 again). Entries that left the server's list between two reads are not seen. Switched
on, ``slowlog-log-slower-than`` is a configuration group's value if it sets one of 0 or
more, else Redis's default (10 ms); switched off, the group's value (or that default)
stands, as before.

Passwords: Redis 7 writes no password to its log, and redacts the secret arguments of
``AUTH``, ``HELLO``, ``ACL SETUSER`` and ``CONFIG SET masterauth`` in its slow log;
Coffer's own ACL commands carry password hashes only (``acl``).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coffer.contracts.engine import InstanceSpec
from coffer.domain.guest_logs import LogDef, LogType, slow_query_threshold
from coffer.engines.base import InstancePaths

__all__ = ["GUEST_LOGS", "SLOW_LOG_FILE", "RedisGuestLogs", "log_settings", "render_entry"]

GUEST_LOGS: tuple[LogDef, ...] = (
    LogDef("error", LogType.SYS, "the server's log (warnings, start, stop, persistence)"),
    LogDef("slow_query", LogType.USER, "commands slower than slowlog-log-slower-than (µs)"),
)
SLOW_LOG_FILE = "slowlog.log"
_STATE_FILE = "slowlog.json"
#: Redis 7.0's ``slowlog-log-slower-than`` (µs)
SLOW_QUERY_US = 10000


def log_settings(spec: InstanceSpec) -> dict[str, int]:
    """The settings the instance's switched-on logs impose (over its parameters)."""
    return slow_query_threshold(
        spec.logs, spec.parameters, "slowlog-log-slower-than", SLOW_QUERY_US
    )


def render_entry(entry: dict[str, Any]) -> str:
    """One ``SLOWLOG GET`` entry (as redis-py parses it) as one line of text."""
    moment = datetime.fromtimestamp(int(entry["start_time"]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    command = str(entry.get("command", "")).replace("\\", "\\\\").replace("\n", "\\n")
    return (
        f"{moment} id={entry['id']} duration_us={entry['duration']} "
        f"client={entry.get('client_address', '')} name={entry.get('client_name', '')} "
        f"command: {command}\n"
    )


class RedisGuestLogs:
    def path(self, paths: InstancePaths, spec: InstanceSpec, name: str) -> Path:
        if name == "error":
            return paths.log_file
        if name != "slow_query":
            raise KeyError(name)
        target = paths.root / SLOW_LOG_FILE
        if "slow_query" in spec.logs:
            _append_new_entries(paths, target)
        return target


def _append_new_entries(paths: InstancePaths, target: Path) -> None:
    from coffer.engines.redis.connection import connect, translate_errors

    state_path = paths.root / _STATE_FILE
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        state = {}
    with translate_errors("reading the slow log"), connect(paths) as client:
        run_id = str(client.info("server")["run_id"])
        entries = client.slowlog_get(-1)
    last = int(state.get("last_id", -1)) if state.get("run_id") == run_id else -1
    fresh = sorted((e for e in entries if int(e["id"]) > last), key=lambda e: int(e["id"]))
    if not fresh:
        return
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.writelines(render_entry(e) for e in fresh)
    tmp = state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"run_id": run_id, "last_id": int(fresh[-1]["id"])}))
    os.replace(tmp, state_path)
