"""Shared fixtures: real Coffer servers (with their local agents and real engines).

Every test that uses ``server`` or ``fresh_server`` runs twice: once with the embedded
SQLite metadata and once with metadata (and DBOS state) in a real PostgreSQL server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.pgcluster import MetadataPostgres
from tests.support.processes import CofferServer, Credentials

METADATA = ["sqlite", "postgresql"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test's report carries the end of its Coffer server's and agent's logs."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" and report.failed:
        for name in ("fresh_server", "server"):
            srv = getattr(item, "funcargs", {}).get(name)
            if isinstance(srv, CofferServer):
                report.sections.append((f"Coffer logs ({name})", srv.log_tail(80)))


@pytest.fixture(scope="session")
def metadata_postgres() -> Iterator[MetadataPostgres]:
    pg = MetadataPostgres()
    try:
        yield pg.start()
    finally:
        pg.stop()


def _metadata_env(kind: str, request: pytest.FixtureRequest) -> dict[str, str]:
    if kind == "sqlite":
        return {}
    pg: MetadataPostgres = request.getfixturevalue("metadata_postgres")
    return {"COFFER_DATABASE_URL": pg.new_database_url()}


@pytest.fixture(scope="session", params=METADATA)
def server(request: pytest.FixtureRequest) -> Iterator[CofferServer]:
    """One running Coffer per metadata kind, shared by the tests of a worker."""
    srv = CofferServer(env=_metadata_env(request.param, request))
    try:
        yield srv.start()
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def admin(server: CofferServer) -> Credentials:
    return server.admin()


@pytest.fixture(params=METADATA)
def fresh_server(request: pytest.FixtureRequest) -> Iterator[CofferServer]:
    """A server of its own (not started), for tests that crash or reconfigure it."""
    env = {"COFFER_HEARTBEAT_EXPIRY_S": "3", "COFFER_LOCAL_AGENT_RESTART_S": "2"}
    env.update(_metadata_env(request.param, request))
    srv = CofferServer(env=env)
    try:
        yield srv
    finally:
        srv.stop()
