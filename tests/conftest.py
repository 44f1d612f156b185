"""Shared fixtures: real Coffer servers (with their local agents and real engines)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import CofferServer, Credentials


@pytest.fixture(scope="session")
def server() -> Iterator[CofferServer]:
    """One running Coffer (SQLite metadata) shared by the tests of a worker."""
    srv = CofferServer()
    try:
        yield srv.start()
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def admin(server: CofferServer) -> Credentials:
    return server.admin()


@pytest.fixture
def fresh_server() -> Iterator[CofferServer]:
    """A server of its own, for tests that crash or reconfigure it."""
    srv = CofferServer(env={"COFFER_HEARTBEAT_EXPIRY_S": "3", "COFFER_LOCAL_AGENT_RESTART_S": "2"})
    try:
        yield srv
    finally:
        srv.stop()
