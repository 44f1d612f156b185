"""At-least-once delivery of agent commands, as a restarted agent sees it: a command sent
to an agent that died is delivered again to the next poll that does not report it as
running (and only to such a poll); the first result wins, later ones are ignored.

Runs the real command bus on a real (SQLite) metadata database, migrated as the server
migrates it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from coffer.clock import utcnow
from coffer.contracts.agent_v1 import CommandKind, CommandResult, RegisterRequest
from coffer.errors import AgentUnavailable, EngineError
from coffer.server import build_runtime
from coffer.services import agents
from coffer.services.commands import CommandBus
from coffer.services.runtime import Runtime
from coffer.settings import ServerSettings


@pytest.fixture(scope="module")
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    """One migrated database for the module; each test uses hosts of its own."""
    data_dir = Path(tempfile.mkdtemp(prefix="cf-bus-"))
    request.addfinalizer(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    rt = build_runtime(ServerSettings(data_dir=data_dir))
    yield rt
    bind = rt.sessions.kw["bind"]
    bind.dispose()


def _host(rt: Runtime, name: str) -> str:
    token = agents.create_join_token(rt)
    request = RegisterRequest(join_token=token, host_name=name, address="127.0.0.1")
    return agents.register(rt, request).host_id


def _backup(bus: CommandBus, host: str, command_id: str | None = None) -> str:
    command_id = command_id or f"backup-{host}:stream"
    bus.submit(
        command_id=command_id,
        host_id=host,
        instance_id=None,
        kind=CommandKind.BACKUP,
        payload={"backup": {"id": "b1"}},
    )
    return command_id


def _ids(bus: CommandBus, host: str, running: list[str]) -> list[str]:
    return [cmd.id for cmd in bus.take_deliverable(host, running)]


def test_a_restarted_agent_gets_the_command_its_predecessor_was_running(
    runtime: Runtime,
) -> None:
    bus = CommandBus(runtime)
    host = _host(runtime, "restarted")
    cid = _backup(bus, host)
    assert _ids(bus, host, []) == [cid], "first delivery"
    # the killed agent's long poll, still open on the server, reports it running
    assert _ids(bus, host, [cid]) == []
    # the restarted agent runs nothing yet: delivered again, with the same payload
    again = bus.take_deliverable(host, [])
    assert [c.id for c in again] == [cid] and again[0].payload == {"backup": {"id": "b1"}}
    assert _ids(bus, host, [cid]) == [], "not while the new agent reports it running"
    assert bus.outcome(cid) is None


def test_the_first_result_wins_and_later_ones_are_ignored(runtime: Runtime) -> None:
    bus = CommandBus(runtime)
    host = _host(runtime, "first-wins")
    cid = _backup(bus, host)
    _ids(bus, host, [])
    _ids(bus, host, [])  # re-delivered to a restarted agent
    first = CommandResult(ok=True, result={"size": 10, "sha256": "aa"})
    assert bus.complete(host, cid, first)
    late = CommandResult(ok=False, error_code="EngineError", error_message="killed attempt")
    assert not bus.complete(host, cid, late)
    assert bus.outcome(cid) == {"size": 10, "sha256": "aa"}
    assert _ids(bus, host, []) == [], "a finished command is never delivered again"
    assert bus.wait(cid, utcnow() + timedelta(seconds=5)) == {"size": 10, "sha256": "aa"}


def test_a_failed_command_raises_its_error_to_the_waiter(runtime: Runtime) -> None:
    bus = CommandBus(runtime)
    host = _host(runtime, "failed")
    cid = _backup(bus, host)
    _ids(bus, host, [])
    failed = CommandResult(ok=False, error_code="EngineError", error_message="pg_basebackup died")
    assert bus.complete(host, cid, failed)
    with pytest.raises(EngineError, match="pg_basebackup died"):
        bus.wait(cid, utcnow() + timedelta(seconds=5))


def test_results_from_another_host_or_for_unknown_commands_are_refused(
    runtime: Runtime,
) -> None:
    bus = CommandBus(runtime)
    host, other = _host(runtime, "mine"), _host(runtime, "other")
    cid = _backup(bus, host)
    assert _ids(bus, other, []) == [], "a command goes to its own host only"
    assert not bus.complete(other, cid, CommandResult(ok=True))
    assert not bus.complete(host, "no-such-command", CommandResult(ok=True))
    assert bus.outcome(cid) is None
    with pytest.raises(AgentUnavailable, match="deadline"):
        bus.wait(cid, utcnow())


def test_a_resubmitted_command_is_not_queued_twice(runtime: Runtime) -> None:
    bus = CommandBus(runtime)
    host = _host(runtime, "resubmit")
    cid = _backup(bus, host)
    _ids(bus, host, [])
    assert bus.complete(host, cid, CommandResult(ok=True, result={"size": 1}))
    _backup(bus, host, cid)  # a workflow step replayed after a server crash
    assert _ids(bus, host, []) == []
    assert bus.outcome(cid) == {"size": 1}
