"""``/openapi.json`` is true: schemathesis generates requests for every operation it
documents, sends them to a real ``coffer server`` and checks every reply (no server error;
status code, content type, body and headers as documented). Deterministic (derandomized
Hypothesis, no example database), bounded (a fixed number of cases per operation).

Nothing heavy starts: the generated requests come with the token of a project whose quotas
are all zero, so a valid create (instance, replica, cluster, backup) is refused by quota
(413) before any engine is asked for; every admin-only route refuses that token (403).
A second pass sends only GET and HEAD requests (which change nothing) with the admin's
token, so the admin views' replies are checked too; a third sends one valid request per
operation without a token (401, documented, in the right envelope). ``project_id`` in
paths is always the token's own project, so requests reach validation and the services
instead of stopping at the project check.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from schemathesis import GenerationMode

from tests.support.fuzz import Fuzzer, Summary
from tests.support.processes import CofferServer, Credentials

pytestmark = pytest.mark.integration

#: cases per operation and generation mode (valid requests; requests with one part invalid)
PROJECT_EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 6}
ADMIN_EXAMPLES = {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 3}
#: and one valid request per operation without any token
ANONYMOUS_EXAMPLES = {GenerationMode.POSITIVE: 1}
MIN_CASES = 1000
ZERO_QUOTAS = {"instances": 0, "ram": 0, "volumes": 0, "backups": 0}


@pytest.fixture
def zero_quota_project(server: CofferServer, admin: Credentials) -> Iterator[Credentials]:
    """A project of its own that may create nothing heavy; what the run created in it
    (configuration groups, a backup strategy) is deleted afterwards."""
    creds = server.new_project(f"openapi-{uuid.uuid4().hex[:8]}")
    with admin.client() as c:
        r = c.put(f"/mgmt/quotas/{creds.project_id}", json={"quotas": ZERO_QUOTAS})
        assert r.status_code == 200, r.text
    try:
        yield creds
    finally:
        with creds.client() as c:
            for group in c.get("/configurations").json()["configurations"]:
                assert c.delete(f"/configurations/{group['id']}").status_code == 202
            c.delete("/backup_strategies")


def _snapshot(c: httpx.Client, project_id: str) -> dict[str, Any]:
    """What an admin sees that the run must not have changed."""
    return {
        "flavors": c.get("/flavors").json(),
        "datastores": c.get("/datastores").json(),
        "projects": c.get("/mgmt/projects").json(),
        "versions": c.get("/mgmt/datastore-versions").json(),
        "quotas": c.get(f"/mgmt/quotas/{project_id}").json(),
        "users": c.get("/mgmt/users").json(),
    }


def _nothing_heavy(c: httpx.Client) -> None:
    for collection in ("instances", "clusters", "backups", "backup_schedules"):
        r = c.get(f"/{collection}")
        assert r.status_code == 200, r.text
        assert r.json()[collection] == [], f"the run created {collection}"


def test_every_documented_operation_answers_as_documented(
    server: CofferServer,
    admin: Credentials,
    zero_quota_project: Credentials,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = zero_quota_project
    with admin.client() as c:
        before = _snapshot(c, project.project_id)

    as_project, as_admin, anonymous = Summary(), Summary(), Summary()
    Fuzzer(server.url, project.token, {"project_id": project.project_id}).run(
        keep=lambda method, path: True, examples=PROJECT_EXAMPLES, summary=as_project
    )
    Fuzzer(server.url, admin.token, {"project_id": admin.project_id}).run(
        keep=lambda method, path: method in ("GET", "HEAD"),
        examples=ADMIN_EXAMPLES,
        summary=as_admin,
    )
    Fuzzer(server.url, None, {"project_id": project.project_id}).run(
        keep=lambda method, path: True, examples=ANONYMOUS_EXAMPLES, summary=anonymous
    )
    with capsys.disabled():
        print("\n" + as_project.text("schemathesis, zero-quota project token"))
        print(as_admin.text("schemathesis, admin token (GET and HEAD only)"))
        print(anonymous.text("schemathesis, no token"))

    documented = len(as_project.operations)
    assert documented >= 90, f"only {documented} operations in /openapi.json"
    assert as_project.cases + as_admin.cases + anonymous.cases >= MIN_CASES
    failures = as_project.failures + as_admin.failures + anonymous.failures
    assert not failures, "\n\n".join(f"{f.operation} [{f.mode}]\n{f.detail}" for f in failures)
    # the project's token reached the services, not only the authentication
    assert as_project.statuses[200] and as_project.statuses[404] and as_project.statuses[413]
    assert anonymous.statuses[401] >= documented - 10  # all but the public operations

    with admin.client() as c:
        assert _snapshot(c, project.project_id) == before
        hosts = c.get("/mgmt/hosts").json()["hosts"]
        assert any(h["alive"] for h in hosts), "the local agent is gone"
    with project.client() as c:
        _nothing_heavy(c)
