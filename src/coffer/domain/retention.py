"""Backup schedules' pure rules: retention periods and which backups have expired.

A schedule keeps its backups for a retention period ("7d", "12h", "90m", "30s"). A backup
past it is pruned unless a backup still kept is built on it (an incremental needs its
whole chain), so pruning never breaks a restorable chain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from coffer.errors import BadRequest

_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_retention(text: str) -> timedelta:
    """``"7d"`` → 7 days; units s, m, h, d, w; at least one second."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise BadRequest(
            f"retention {text!r} is not a duration: give a positive number and a unit, "
            "e.g. '7d', '12h', '90m' (units: s, m, h, d, w)"
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class Kept:
    """What pruning needs to know of one backup. ``prunable`` is False for backups the
    retention does not own (taken by hand or by another schedule, or still running):
    they are never pruned, and neither are their ancestors."""

    id: str
    parent_id: str | None
    created: datetime
    prunable: bool = True


def expired(backups: Iterable[Kept], *, now: datetime, keep: timedelta) -> list[str]:
    """Ids of the prunable backups older than ``keep`` that no kept backup depends on,
    children before their parents (the order to delete them in)."""
    items = {b.id: b for b in backups}
    candidates = {i for i, b in items.items() if b.prunable and now - b.created > keep}
    needed: set[str] = set()
    for i in set(items) - candidates:
        parent = items[i].parent_id
        while parent is not None and parent not in needed and parent in items:
            needed.add(parent)
            parent = items[parent].parent_id
    doomed = candidates - needed

    def depth(backup_id: str) -> int:
        n, parent = 0, items[backup_id].parent_id
        while parent is not None and parent in items:
            n, parent = n + 1, items[parent].parent_id
        return n

    return sorted(doomed, key=lambda i: (-depth(i), i))
