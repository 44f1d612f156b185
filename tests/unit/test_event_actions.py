"""How a state-changing request is named in the audit trail (pure)."""

from __future__ import annotations

import pytest

from coffer.services.events import request_action

P = "/v1.0/{project_id}"


@pytest.mark.parametrize(
    ("method", "route", "expected"),
    [
        ("POST", f"{P}/instances", ("instance.create", "instance")),
        ("POST", f"{P}/instances/{{instance_id}}/action", ("instance.action", "instance")),
        ("PUT", f"{P}/instances/{{instance_id}}", ("instance.update", "instance")),
        ("DELETE", f"{P}/instances/{{instance_id}}", ("instance.delete", "instance")),
        ("POST", f"{P}/instances/{{instance_id}}/users", ("instance.user.create", "instance")),
        (
            "DELETE",
            f"{P}/instances/{{instance_id}}/users/{{name}}",
            ("instance.user.delete", "instance"),
        ),
        ("POST", f"{P}/clusters/{{cluster_id}}", ("cluster.action", "cluster")),
        ("POST", f"{P}/backup_strategies", ("backup_strategy.create", "backup_strategy")),
        ("PUT", f"{P}/mgmt/quotas/{{target}}", ("mgmt.quota.update", "mgmt")),
        ("POST", f"{P}/instances/{{instance_id}}/root", ("instance.root.create", "instance")),
    ],
)
def test_requests_are_named_by_resource_and_verb(
    method: str, route: str, expected: tuple[str, str]
) -> None:
    assert request_action(method, route) == expected


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("GET", f"{P}/instances"),
        ("HEAD", f"{P}/instances"),
        ("POST", "/agent/v1/heartbeat"),
        ("POST", f"{P}/{{project_id}}"),
    ],
)
def test_reads_and_other_routes_are_not_events(method: str, route: str) -> None:
    assert request_action(method, route) is None
