"""The public status function: Trove's rules, first match wins."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coffer.domain.states import (
    ServiceStatus,
    StatusInputs,
    TaskStatus,
    can_perform_action,
    public_status,
)

NOW = datetime(2026, 1, 1, 12, 0, 0)
EXPIRY = timedelta(seconds=90)


def status(task: TaskStatus, service: ServiceStatus, age_s: float | None = 1.0) -> tuple[str, str]:
    beat = None if age_s is None else NOW - timedelta(seconds=age_s)
    out = public_status(StatusInputs(task, service, beat, NOW, EXPIRY))
    return out.status, out.operating_status


def test_healthy_instance_is_active_healthy() -> None:
    assert status(TaskStatus.NONE, ServiceStatus.HEALTHY) == ("ACTIVE", "HEALTHY")


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (TaskStatus.BUILDING, ("BUILD", "")),
        (TaskStatus.REBOOTING, ("REBOOT", "")),
        (TaskStatus.RESIZING, ("RESIZE", "")),
        (TaskStatus.DELETING, ("SHUTDOWN", "")),
        (TaskStatus.RESTART_REQUIRED, ("RESTART_REQUIRED", "RESTART_REQUIRED")),
        (TaskStatus.BUILDING_ERROR, ("ERROR", "")),
        (TaskStatus.DELETING_ERROR, ("ERROR", "ERROR")),
    ],
)
def test_tasks_decide_the_status(task: TaskStatus, expected: tuple[str, str]) -> None:
    assert status(task, ServiceStatus.HEALTHY) == expected


@pytest.mark.parametrize(
    ("service", "operating"),
    [
        (ServiceStatus.RUNNING, "ACTIVE"),
        (ServiceStatus.SHUTDOWN, "SHUTDOWN"),
        (ServiceStatus.CRASHED, "SHUTDOWN"),
        (ServiceStatus.RESTARTING, "RESTARTING"),
        (ServiceStatus.FAILED, "FAILED"),
        (ServiceStatus.UNKNOWN, "ERROR"),
    ],
)
def test_idle_instance_shows_the_observed_service(service: ServiceStatus, operating: str) -> None:
    assert status(TaskStatus.NONE, service) == ("ACTIVE", operating)


def test_stale_or_missing_heartbeat_is_error() -> None:
    assert status(TaskStatus.NONE, ServiceStatus.HEALTHY, age_s=91) == ("ACTIVE", "ERROR")
    assert status(TaskStatus.NONE, ServiceStatus.HEALTHY, age_s=None) == ("ACTIVE", "ERROR")
    assert status(TaskStatus.NONE, ServiceStatus.HEALTHY, age_s=89) == ("ACTIVE", "HEALTHY")


def test_a_running_task_wins_over_a_stale_heartbeat() -> None:
    assert status(TaskStatus.RESIZING, ServiceStatus.HEALTHY, age_s=None) == ("RESIZE", "")


@given(
    st.sampled_from(TaskStatus),
    st.sampled_from(ServiceStatus),
    st.one_of(st.none(), st.floats(0, 1000)),
)
def test_status_is_total_and_known(
    task: TaskStatus, service: ServiceStatus, age: float | None
) -> None:
    s, o = status(task, service, age)
    assert s in {
        "ACTIVE",
        "BUILD",
        "REBOOT",
        "RESIZE",
        "SHUTDOWN",
        "RESTART_REQUIRED",
        "ERROR",
        "BACKUP",
        "PROMOTE",
        "EJECT",
        "DETACH",
    }
    assert isinstance(o, str)
    assert (s == "BACKUP") == (task is TaskStatus.BACKUP)
    if task not in (TaskStatus.NONE, TaskStatus.BACKUP):
        assert o in {"", "RESTART_REQUIRED", "ERROR"}


def test_actions_need_an_idle_task_and_an_actionable_engine() -> None:
    assert can_perform_action(TaskStatus.NONE, ServiceStatus.HEALTHY)
    assert can_perform_action(TaskStatus.RESTART_REQUIRED, ServiceStatus.SHUTDOWN)
    assert not can_perform_action(TaskStatus.BUILDING, ServiceStatus.HEALTHY)
    assert not can_perform_action(TaskStatus.NONE, ServiceStatus.NEW)
