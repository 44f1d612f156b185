"""The pure parts of the metrics history: the window a request asks for, the thinning of
long series, when a server samples and prunes, CPU percent between readings, and what
is read of a cgroup's kernel files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coffer.agent.activity import CpuPercent
from coffer.agent.cgroup_usage import (
    GroupUsage,
    parse_cpu_stat_usec,
    parse_key_values,
    read_v1_usage,
    read_v2_usage,
    working_set,
)
from coffer.domain.metric_series import (
    MAX_POINTS,
    MAX_SPAN,
    Point,
    Window,
    check_points,
    downsample,
    resolve_window,
)
from coffer.errors import BadRequest
from coffer.services.sample_gate import SampleGate

NOW = datetime(2027, 1, 15, 8, 0, 0)

# -- the window --------------------------------------------------------------------------


def test_the_default_window_is_the_last_hour() -> None:
    w = resolve_window(since=None, until=None, minutes=None, now=NOW)
    assert w == Window(NOW - timedelta(hours=1), NOW)
    assert w.seconds == 3600


def test_minutes_count_back_from_until_or_now() -> None:
    assert resolve_window(since=None, until=None, minutes=5, now=NOW) == Window(
        NOW - timedelta(minutes=5), NOW
    )
    until = NOW - timedelta(days=1)
    assert resolve_window(since=None, until=until, minutes=30, now=NOW) == Window(
        until - timedelta(minutes=30), until
    )


def test_times_with_an_offset_become_utc_and_naive_ones_are_utc() -> None:
    cet = timezone(timedelta(hours=1))
    w = resolve_window(
        since=datetime(2027, 1, 15, 8, 0, tzinfo=cet),
        until=datetime(2027, 1, 15, 7, 30),
        minutes=None,
        now=NOW,
    )
    assert w == Window(datetime(2027, 1, 15, 7, 0), datetime(2027, 1, 15, 7, 30))
    assert w.since.tzinfo is None and w.until.tzinfo is None


@pytest.mark.parametrize(
    ("since", "until", "minutes", "message"),
    [
        (NOW - timedelta(hours=1), None, 10, "either 'since' or 'minutes'"),
        (NOW, None, None, "'since' must be before 'until'"),
        (NOW + timedelta(seconds=1), NOW, None, "'since' must be before 'until'"),
        (NOW - MAX_SPAN - timedelta(seconds=1), NOW, None, "at most 31 days"),
        (None, None, 0, "'minutes' must be between 1 and 44640"),
        (None, None, -5, "'minutes' must be between 1 and 44640"),
        (None, None, 44641, "'minutes' must be between 1 and 44640"),
    ],
)
def test_bad_windows_are_refused(
    since: datetime | None, until: datetime | None, minutes: int | None, message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        resolve_window(since=since, until=until, minutes=minutes, now=NOW)


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (None, datetime(1, 1, 1, 0, 30)),
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))), None),
    ],
)
def test_windows_outside_the_calendar_are_refused(
    since: datetime | None, until: datetime | None
) -> None:
    with pytest.raises(BadRequest, match="outside the years"):
        resolve_window(since=since, until=until, minutes=None, now=NOW)


def test_the_longest_window_is_allowed() -> None:
    w = resolve_window(since=NOW - MAX_SPAN, until=NOW, minutes=None, now=NOW)
    assert w.until - w.since == MAX_SPAN


@pytest.mark.parametrize("points", [0, -1, MAX_POINTS + 1])
def test_bad_point_counts_are_refused(points: int) -> None:
    with pytest.raises(BadRequest, match="'points' must be between 1 and"):
        check_points(points)


def test_good_point_counts_pass() -> None:
    assert check_points(1) == 1 and check_points(MAX_POINTS) == MAX_POINTS


# -- thinning ----------------------------------------------------------------------------


def _series(n: int, start: datetime, every_s: float = 1.0) -> list[Point]:
    return [
        Point(
            at=start + timedelta(seconds=i * every_s),
            up=True,
            connections=i,
            rate_per_s=float(i),
            cpu_percent=None if i % 2 else 10.0,
            memory_bytes=1000 + i,
            volume_used_bytes=5,
            volume_size_bytes=1024,
        )
        for i in range(n)
    ]


def test_a_series_that_fits_is_kept_as_it_is() -> None:
    window = Window(NOW, NOW + timedelta(seconds=10))
    points = _series(10, NOW)
    assert downsample(points, window, 10) == (points, None)


def test_a_long_series_is_averaged_over_equal_steps() -> None:
    window = Window(NOW, NOW + timedelta(seconds=100))
    points = _series(100, NOW)
    thinned, step = downsample(points, window, 10)
    assert step == 10.0
    assert len(thinned) == 10
    first = thinned[0]  # samples 0..9
    assert first.at == points[9].at, "a step's point is at its last sample"
    assert first.connections == round(sum(range(10)) / 10), "whole numbers: rounded means"
    assert isinstance(first.connections, int) and isinstance(first.memory_bytes, int)
    assert first.rate_per_s == pytest.approx(4.5)
    assert first.cpu_percent == 10.0, "missing figures do not count in the mean"
    assert first.replication_lag_s is None, "no sample had it"
    assert [p.volume_size_bytes for p in thinned] == [1024] * 10
    assert [p.at for p in thinned] == sorted(p.at for p in thinned)


def test_empty_steps_leave_no_point() -> None:
    window = Window(NOW, NOW + timedelta(seconds=100))
    points = _series(6, NOW) + _series(6, NOW + timedelta(seconds=90))
    thinned, step = downsample(points, window, 10)
    assert step == 10.0
    assert len(thinned) == 2


@given(
    n=st.integers(0, 400),
    max_points=st.integers(1, 50),
    every_s=st.floats(0.5, 60, allow_nan=False),
)
def test_thinning_never_gives_more_points_than_asked(
    n: int, max_points: int, every_s: float
) -> None:
    window = Window(NOW, NOW + timedelta(seconds=max(n, 1) * every_s))
    thinned, _ = downsample(_series(n, NOW, every_s), window, max_points)
    assert len(thinned) <= max_points
    assert [p.at for p in thinned] == sorted(p.at for p in thinned)


# -- when a server samples and prunes ----------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_instance_is_due_once_an_interval() -> None:
    clock = _Clock()
    gate = SampleGate(clock)
    assert gate.due(["a", "b"], 15) == ["a", "b"]
    clock.now += 14.9
    assert gate.due(["a", "b"], 15) == []
    clock.now += 0.1
    assert gate.due(["a", "c"], 15) == ["a", "c"], "b was not reported: not sampled"
    clock.now += 5
    assert gate.due(["b"], 15) == ["b"]


def test_a_prune_is_due_at_first_then_once_per_period() -> None:
    clock = _Clock()
    gate = SampleGate(clock)
    assert gate.prune_due(60, 15) is True
    clock.now += 59
    assert gate.prune_due(60, 15) is False
    clock.now += 1
    assert gate.prune_due(60, 15) is True


# -- CPU percent -------------------------------------------------------------------------


def test_cpu_percent_is_cpu_time_over_wall_time() -> None:
    cpu = CpuPercent()
    assert cpu.observe("i", 1_000_000, at=10.0) is None, "a first reading"
    assert cpu.observe("i", 1_500_000, at=12.0) == pytest.approx(25.0)
    assert cpu.observe("i", 5_500_000, at=14.0) == pytest.approx(200.0), "two CPUs busy"
    assert cpu.observe("i", 5_500_000, at=15.0) == 0.0


def test_cpu_percent_restarts_after_a_gap_a_new_group_or_no_time() -> None:
    cpu = CpuPercent()
    cpu.observe("i", 9_000_000, at=1.0)
    assert cpu.observe("i", 100, at=2.0) is None, "a new group counts from 0"
    assert cpu.observe("i", 100, at=2.0) is None, "no time passed"
    assert cpu.observe("i", None, at=3.0) is None
    assert cpu.observe("i", 1_000_100, at=4.0) is None, "a missing reading restarts"
    assert cpu.observe("i", 1_100_100, at=5.0) == pytest.approx(10.0)
    cpu.forget([])
    assert cpu.observe("i", 2_000_000, at=6.0) is None


@given(
    st.lists(
        st.tuples(st.integers(0, 10**13), st.floats(0.001, 60, allow_nan=False)),
        min_size=2,
        max_size=20,
    )
)
def test_cpu_percent_is_never_negative(readings: list[tuple[int, float]]) -> None:
    cpu, at = CpuPercent(), 0.0
    for usec, step in readings:
        at += step
        value = cpu.observe("i", usec, at=at)
        assert value is None or value >= 0


# -- cgroup files ------------------------------------------------------------------------


def test_kernel_key_value_files_are_parsed() -> None:
    stat = "usage_usec 12345\nuser_usec 10000\nsystem_usec 2345\nnr_periods 0\n"
    assert parse_cpu_stat_usec(stat) == 12345
    assert parse_cpu_stat_usec("nr_periods 0\nthrottled_time 0\n") is None, "a v1 cpu.stat"
    assert parse_key_values("cache 10\nbogus\ninactive_file x\ninactive_file 7") == {
        "cache": 10,
        "inactive_file": 7,
    }
    assert working_set(1000, {"inactive_file": 300}, "inactive_file") == 700
    assert working_set(1000, {}, "inactive_file") == 1000
    assert working_set(100, {"inactive_file": 300}, "inactive_file") == 0


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_v2_group_is_read(tmp_path: Path) -> None:
    group = tmp_path / "coffer" / "i1"
    assert read_v2_usage(group) is None, "no group (not started, or no limits)"
    _write(group / "cpu.stat", "usage_usec 4200\nuser_usec 4000\n")
    _write(group / "memory.current", "10485760\n")
    _write(group / "memory.stat", "anon 1\ninactive_file 1048576\n")
    assert read_v2_usage(group) == GroupUsage(cpu_usec=4200, memory_bytes=9 * 1048576)
    (group / "memory.current").unlink()
    assert read_v2_usage(group) == GroupUsage(cpu_usec=4200, memory_bytes=None)


def test_v1_groups_are_read(tmp_path: Path) -> None:
    memory = tmp_path / "memory" / "coffer" / "i1"
    cpuacct = tmp_path / "cpuacct" / "coffer" / "i1"
    assert read_v1_usage(memory=memory, cpuacct=cpuacct) is None
    _write(memory / "memory.usage_in_bytes", "5000000\n")
    _write(memory / "memory.stat", "inactive_file 1\ntotal_inactive_file 1000000\n")
    assert read_v1_usage(memory=memory, cpuacct=None) == GroupUsage(None, 4_000_000)
    _write(cpuacct / "cpuacct.usage", "7000123456\n")
    assert read_v1_usage(memory=memory, cpuacct=cpuacct) == GroupUsage(7_000_123, 4_000_000)


def test_aware_utc_times_compare_with_stored_ones() -> None:
    """The API's times are aware; the window's are naive UTC as stored."""
    w = resolve_window(since=None, until=NOW.replace(tzinfo=UTC), minutes=1, now=NOW)
    assert w.until == NOW
