"""The failover decision: a source is lost only when it is silent or down *and* every
live replica has lost it too."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from coffer.domain.failover import Member, lost_source
from coffer.domain.states import ServiceStatus

NOW = datetime(2026, 11, 26, 12, 0, 0)
AFTER = timedelta(seconds=2.5)


def member(
    name: str,
    age_s: float | None,
    status: ServiceStatus = ServiceStatus.HEALTHY,
    streaming: bool | None = None,
) -> Member:
    seen = None if age_s is None else NOW - timedelta(seconds=age_s)
    return Member(name, seen, status, streaming)


def test_a_silent_source_whose_replicas_lost_it_is_lost() -> None:
    reason = lost_source(member("s", 4), [member("r1", 0.5, streaming=False)], NOW, AFTER)
    assert reason is not None and "silent for 4.0 s" in reason


def test_a_down_engine_on_a_live_host_is_lost() -> None:
    source = member("s", 0.5, ServiceStatus.CRASHED)
    reason = lost_source(source, [member("r1", 0.5, streaming=False)], NOW, AFTER)
    assert reason is not None and "crashed" in reason


def test_no_failover_while_a_replica_still_receives() -> None:
    replicas = [member("r1", 0.5, streaming=False), member("r2", 0.5, streaming=True)]
    assert lost_source(member("s", 10), replicas, NOW, AFTER) is None


def test_no_failover_without_a_live_replica_or_a_report() -> None:
    assert lost_source(member("s", 10), [member("r1", 10, streaming=False)], NOW, AFTER) is None
    assert lost_source(member("s", 10), [member("r1", 0.1)], NOW, AFTER) is None
    assert lost_source(member("s", 10), [], NOW, AFTER) is None


@given(
    st.floats(0, 2.5),
    st.sampled_from([ServiceStatus.HEALTHY, ServiceStatus.RUNNING, ServiceStatus.BLOCKED]),
    st.lists(st.booleans(), max_size=3),
)
def test_a_serving_source_is_never_lost(
    age: float, status: ServiceStatus, flags: list[bool]
) -> None:
    replicas = [member(f"r{i}", 0.1, streaming=f) for i, f in enumerate(flags)]
    assert lost_source(member("s", age, status), replicas, NOW, AFTER) is None
