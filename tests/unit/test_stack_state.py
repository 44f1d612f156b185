"""The stack state file: round trip, private mode, no passwords, malformed files refused."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from coffer.stacks import StateError, StateStore
from coffer.stacks.passwords import password_digest, password_matches
from coffer.stacks.plan import RecordedResource
from coffer.stacks.resources import ResourceType


def test_round_trip_and_removal(tmp_path: Path) -> None:
    store = StateStore.for_project(tmp_path, "p1")
    assert store.load("demo") == {}
    records = {
        "db": RecordedResource(
            "i-1",
            ResourceType.INSTANCE,
            frozenset(),
            frozenset({"shop"}),
            {"app@%": password_digest("pw-secret")},
        ),
        "replica": RecordedResource("i-2", ResourceType.INSTANCE, frozenset({"db"})),
        "ring": RecordedResource("c-1", ResourceType.CLUSTER),
    }
    store.save("demo", records)
    path = tmp_path / "stacks" / "p1" / "demo.json"
    assert store.path("demo") == path and store.exists("demo")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "pw-secret" not in path.read_text()
    assert store.load("demo") == records
    assert [p.name for p in path.parent.iterdir()] == ["demo.json"]  # no temporary file left
    store.remove("demo")
    assert not path.exists() and not path.parent.exists()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        json.dumps({"version": 99, "resources": {}}),
        json.dumps({"version": 1, "resources": {"db": {"type": "OS::Trove::Instance"}}}),
        json.dumps({"version": 1, "resources": {"db": {"id": "x", "type": "OS::Nova::Server"}}}),
    ],
)
def test_malformed_state_is_refused(tmp_path: Path, content: str) -> None:
    store = StateStore(tmp_path)
    (tmp_path / "demo.json").write_text(content)
    with pytest.raises(StateError, match="demo"):
        store.load("demo")


def test_password_digests() -> None:
    digest = password_digest("pw-1")
    assert digest.startswith("scrypt$") and "pw-1" not in digest
    assert password_matches("pw-1", digest)
    assert not password_matches("pw-2", digest)
    assert password_digest("pw-1") != digest  # salted
    assert not password_matches("pw-1", "plain")
    assert not password_matches("pw-1", "scrypt$!!$??")
