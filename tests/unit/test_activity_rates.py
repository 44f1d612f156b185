"""The agent's activity rates: counter readings in, ``EngineActivity`` out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from coffer.agent.activity import Rates
from coffer.contracts.agent_v1 import EngineActivity, InstanceObservation
from coffer.engines.base import EngineCounters


def _pg(operations: int, connections: int = 3) -> EngineCounters:
    return EngineCounters(connections=connections, operations=operations, kind="transactions")


def test_first_reading_is_up_without_a_rate() -> None:
    first = Rates().observe("i1", _pg(100), at=10.0)
    assert first == EngineActivity(up=True, connections=3, kind="transactions", rate_per_s=None)


def test_rate_is_growth_per_second_between_readings() -> None:
    rates = Rates()
    rates.observe("i1", _pg(100), at=10.0)
    assert rates.observe("i1", _pg(150), at=12.0).rate_per_s == pytest.approx(25.0)
    assert rates.observe("i1", _pg(150), at=13.0).rate_per_s == 0.0
    assert rates.observe("i1", _pg(180), at=14.5).rate_per_s == pytest.approx(20.0)


def test_instances_are_apart() -> None:
    rates = Rates()
    rates.observe("a", _pg(0), at=0.0)
    rates.observe("b", _pg(1000), at=0.0)
    assert rates.observe("a", _pg(10), at=1.0).rate_per_s == pytest.approx(10.0)
    assert rates.observe("b", _pg(1100), at=1.0).rate_per_s == pytest.approx(100.0)


def test_a_counter_that_went_back_starts_a_new_rate() -> None:
    rates = Rates()
    rates.observe("i1", _pg(5000), at=0.0)
    assert rates.observe("i1", _pg(7), at=1.0).rate_per_s is None, "engine restarted"
    assert rates.observe("i1", _pg(17), at=2.0).rate_per_s == pytest.approx(10.0)


def test_no_rate_without_time_passing_or_across_kinds() -> None:
    rates = Rates()
    rates.observe("i1", _pg(10), at=5.0)
    assert rates.observe("i1", _pg(20), at=5.0).rate_per_s is None
    redis = EngineCounters(connections=0, operations=30, kind="commands")
    assert rates.observe("i1", redis, at=6.0).rate_per_s is None


def test_down_is_not_up_and_forgets_the_last_reading() -> None:
    rates = Rates()
    rates.observe("i1", _pg(10), at=0.0)
    assert rates.down("i1") == EngineActivity(up=False)
    assert rates.observe("i1", _pg(20), at=1.0).rate_per_s is None


def test_forget_drops_instances_no_longer_live() -> None:
    rates = Rates()
    rates.observe("gone", _pg(10), at=0.0)
    rates.observe("kept", _pg(10), at=0.0)
    rates.forget(["kept"])
    assert rates.observe("gone", _pg(20), at=1.0).rate_per_s is None
    assert rates.observe("kept", _pg(20), at=1.0).rate_per_s == pytest.approx(10.0)


@given(
    st.lists(
        st.tuples(st.integers(0, 10**12), st.floats(0.001, 3600, allow_nan=False)),
        min_size=2,
        max_size=20,
    )
)
def test_rates_are_never_negative(readings: list[tuple[int, float]]) -> None:
    rates, at = Rates(), 0.0
    for operations, step in readings:
        at += step
        rate = rates.observe("i", _pg(operations), at=at).rate_per_s
        assert rate is None or rate >= 0


def test_the_contract_refuses_bad_activity() -> None:
    with pytest.raises(ValidationError):
        EngineActivity(up=True, kind="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        EngineActivity(up=True, connections=-1)
    with pytest.raises(ValidationError):
        EngineActivity(up=True, rate_per_s=-0.5)


def test_observations_without_activity_stay_valid() -> None:
    """Older agents send no activity: the field is optional."""
    obs = InstanceObservation.model_validate({"instance_id": "i", "service_status": "healthy"})
    assert obs.activity is None
