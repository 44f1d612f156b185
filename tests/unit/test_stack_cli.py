"""``coffer stack``'s bad paths: a bad template, parameter or stack name ends in one
``error:`` line, exit status 1, no request to the server and no state file. The client
is injected through ``CliHooks``; a transport that records requests stands in for the
server (the happy paths run against a real server in tests/e2e/test_stacks.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from coffer.cli.main import app
from coffer.cli.state import CliHooks
from coffer.client import CofferClient, Credentials

ENDPOINT = "http://coffer.test:8779/v1.0/p1"
GOOD = """\
heat_template_version: 2021-04-16
parameters:
  size: {type: number, default: 1}
resources:
  cache:
    type: OS::Trove::Instance
    properties: {flavor: tiny, size: {get_param: size}, datastore_type: redis}
"""


class Recorder:
    """Answers every request 500 and remembers it: a bad-input command sends none."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return httpx.Response(500, json={"instanceFault": {"code": 500, "message": "no"}})

    def client(self, credentials: Credentials) -> CofferClient:
        return CofferClient.from_credentials(credentials, transport=httpx.MockTransport(self))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Recorder:
    monkeypatch.setenv("COFFER_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("COFFER_TOKEN", "tok")
    monkeypatch.setenv("COFFER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return Recorder()


def _run(recorder: Recorder, *args: str) -> Result:
    hooks = CliHooks(client_factory=recorder.client, poll_interval=0)
    return CliRunner().invoke(app, ["stack", *args], obj=hooks)


def _error(result: Result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("template", "args", "expected"),
    [
        (
            GOOD.replace("OS::Trove::Instance", "OS::Heat::None"),
            (),
            "is not a supported resource type",
        ),
        (GOOD.replace("flavor: tiny, ", ""), (), "properties.flavor is required"),
        (GOOD.replace("get_param: size", "get_param: sise"), (), "unknown parameter 'sise'"),
        (GOOD, ("--parameter", "size=0"), "size must be within 1..150"),
        (GOOD, ("--parameter", "colour=red"), "--parameter 'colour' is not declared"),
        (GOOD, ("--parameter", "size"), "--parameter 'size' is not KEY=VALUE"),
        (GOOD, ("--name", "9lives"), "stack name '9lives' is not valid"),
        ("resources: [\n", (), "not valid YAML"),
    ],
)
def test_bad_input_changes_nothing(
    recorder: Recorder, tmp_path: Path, template: str, args: tuple[str, ...], expected: str
) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(template)
    for command in ("apply", "show"):
        line = _error(_run(recorder, command, str(path), *args))
        assert expected in line, line
    assert recorder.requests == []
    assert not (tmp_path / "data" / "stacks").exists()


def test_a_missing_file(recorder: Recorder, tmp_path: Path) -> None:
    line = _error(_run(recorder, "apply", str(tmp_path / "absent.yaml")))
    assert "cannot read" in line and "absent.yaml" in line
    assert recorder.requests == []


def test_deleting_a_stack_never_applied_does_nothing(recorder: Recorder, tmp_path: Path) -> None:
    result = _run(recorder, "delete", str(tmp_path / "never.yaml"), "--json")
    assert result.exit_code == 0, result.stderr
    assert '"summary": "nothing to delete"' in result.stdout
    assert recorder.requests == []


def test_a_server_error_is_one_line(recorder: Recorder, tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(GOOD)
    line = _error(_run(recorder, "apply", str(path)))
    assert line == "error: no (HTTP 500)"
    assert recorder.requests == ["GET /v1.0/p1/flavors"]  # observing, before any change
