"""Retention of scheduled backups: durations, and pruning that never breaks a chain."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coffer.domain.retention import Kept, expired, parse_retention
from coffer.errors import BadRequest

NOW = datetime(2026, 11, 26, 12, 0, 0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("90m", 5400), ("12h", 43200), ("7d", 604800), ("2w", 1209600), (" 1 d ", 86400)],
)
def test_parse_retention(text: str, seconds: int) -> None:
    assert parse_retention(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d", "0d", "-1d", "1y", "1.5h", "7 days"])
def test_parse_retention_refuses(text: str) -> None:
    with pytest.raises(BadRequest, match="is not a duration"):
        parse_retention(text)


def test_old_chain_kept_while_a_young_incremental_needs_it() -> None:
    old = NOW - timedelta(days=10)
    backups = [
        Kept("full1", None, old),
        Kept("inc1", "full1", old + timedelta(hours=1)),
        Kept("inc2", "inc1", NOW - timedelta(hours=1)),  # young: needs inc1 and full1
        Kept("full0", None, old - timedelta(days=1)),
        Kept("inc0", "full0", old - timedelta(hours=20)),
    ]
    assert expired(backups, now=NOW, keep=timedelta(days=7)) == ["inc0", "full0"]


def test_a_backup_retention_does_not_own_keeps_its_chain() -> None:
    old = NOW - timedelta(days=30)
    backups = [
        Kept("full", None, old),
        Kept("manual", "full", old + timedelta(hours=1), prunable=False),
        Kept("running", None, old, prunable=False),
        Kept("lone", None, old),
    ]
    assert expired(backups, now=NOW, keep=timedelta(days=7)) == ["lone"]


def test_nothing_expires_inside_retention() -> None:
    backups = [Kept("a", None, NOW - timedelta(days=1)), Kept("b", "a", NOW)]
    assert expired(backups, now=NOW, keep=timedelta(days=7)) == []


@st.composite
def forests(draw: st.DrawFn) -> list[Kept]:
    n = draw(st.integers(0, 25))
    out: list[Kept] = []
    for i in range(n):
        parent = draw(st.one_of(st.none(), st.sampled_from([b.id for b in out]))) if out else None
        age = draw(st.integers(0, 30 * 24))
        out.append(Kept(f"b{i}", parent, NOW - timedelta(hours=age), prunable=draw(st.booleans())))
    return out


@given(forests(), st.integers(1, 30 * 24))
def test_pruning_keeps_every_chain_restorable(backups: list[Kept], keep_hours: int) -> None:
    keep = timedelta(hours=keep_hours)
    doomed = expired(backups, now=NOW, keep=keep)
    by_id = {b.id: b for b in backups}
    left = set(by_id) - set(doomed)
    for b in backups:
        if NOW - b.created <= keep or not b.prunable:
            assert b.id in left, "a backup inside retention, or not owned, is never pruned"
    for i in left:
        parent = by_id[i].parent_id
        assert parent is None or parent in left, "every kept backup keeps its parent"
    for i in doomed:
        assert NOW - by_id[i].created > keep
    position = {i: n for n, i in enumerate(doomed)}
    for i in doomed:
        parent = by_id[i].parent_id
        if parent in position:
            assert position[i] < position[parent], "children are deleted before parents"
