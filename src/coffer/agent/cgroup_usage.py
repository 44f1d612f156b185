"""What an instance's cgroup has used: CPU time so far and memory now.

The parsers are pure (kernel file text in, numbers out); ``read_v1_usage`` and
``read_v2_usage`` read the files of one group and never raise for a missing or unreadable
one (a figure the kernel does not give is None).

* CPU: cgroup v2 ``cpu.stat`` ``usage_usec`` (present even without the cpu controller);
  cgroup v1 ``cpuacct.usage`` (nanoseconds).
* Memory: the working set, as container tools show it — the group's charge
  (``memory.current`` / ``memory.usage_in_bytes``) less the page cache the kernel may
  drop at once (``inactive_file`` / ``total_inactive_file`` of ``memory.stat``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GroupUsage",
    "parse_cpu_stat_usec",
    "parse_key_values",
    "read_v1_usage",
    "read_v2_usage",
    "working_set",
]


@dataclass(frozen=True)
class GroupUsage:
    #: CPU time used by the group's processes since it was made, microseconds
    cpu_usec: int | None
    #: memory in use now (working set), bytes
    memory_bytes: int | None


def parse_cpu_stat_usec(text: str) -> int | None:
    """``usage_usec`` of a v2 ``cpu.stat`` file, None when it has none."""
    return parse_key_values(text).get("usage_usec")


def parse_key_values(text: str) -> dict[str, int]:
    """``key value`` lines (``memory.stat``, ``cpu.stat``) as a mapping; other lines
    are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


def working_set(charged: int, stat: dict[str, int], inactive_key: str) -> int:
    """The charged bytes less the inactive file cache (never below zero)."""
    return max(charged - stat.get(inactive_key, 0), 0)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _memory(charged_file: Path, stat_file: Path, inactive_key: str) -> int | None:
    charged = _int(_read(charged_file))
    if charged is None:
        return None
    return working_set(charged, parse_key_values(_read(stat_file) or ""), inactive_key)


def read_v2_usage(group: Path) -> GroupUsage | None:
    """The usage of a v2 group; None when the group does not exist."""
    if not group.is_dir():
        return None
    cpu = _read(group / "cpu.stat")
    return GroupUsage(
        cpu_usec=parse_cpu_stat_usec(cpu) if cpu is not None else None,
        memory_bytes=_memory(group / "memory.current", group / "memory.stat", "inactive_file"),
    )


def read_v1_usage(*, memory: Path, cpuacct: Path | None) -> GroupUsage | None:
    """The usage of an instance's v1 groups (``cpuacct`` None: not mounted); None when
    its memory group does not exist."""
    if not memory.is_dir():
        return None
    nanoseconds = _int(_read(cpuacct / "cpuacct.usage")) if cpuacct is not None else None
    return GroupUsage(
        cpu_usec=nanoseconds // 1000 if nanoseconds is not None else None,
        memory_bytes=_memory(
            memory / "memory.usage_in_bytes", memory / "memory.stat", "total_inactive_file"
        ),
    )
