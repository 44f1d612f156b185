"""The coffer CLI, with httpx.MockTransport standing in for the server.

The client is injected through the documented hook: ``CliHooks(client_factory=...)``
passed as the Click context object.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from coffer.cli.config import default_data_dir, find_checkout
from coffer.cli.connection import CONNECTION_FORMATS, ConnectionTarget, connection_target
from coffer.cli.main import app
from coffer.cli.state import CliHooks
from coffer.client import CofferClient, Credentials

ENDPOINT = "http://coffer.test:8779/v1.0/p1"
Reply = httpx.Response | Callable[[httpx.Request], httpx.Response]


class FakeServer:
    """Canned replies by (method, raw path below /v1.0/<project>); records requests."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *replies: Reply) -> None:
        """Answer with ``replies`` in turn; the last one repeats."""
        self.routes[(method, path)] = list(replies)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        raw = request.url.raw_path.decode().split("?")[0]
        path = "/" + raw.removeprefix("/v1.0/").partition("/")[2]
        replies = self.routes.get((request.method, path))
        if not replies:
            return fault(404, "itemNotFound", f"no route {request.method} {path}")
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        return reply(request) if callable(reply) else reply

    def calls(self) -> list[str]:
        return [f"{r.method} {r.url.raw_path.decode()}" for r in self.requests]

    def bodies(self, method: str) -> list[Any]:
        return [json.loads(r.content) for r in self.requests if r.method == method and r.content]


class Cli:
    """Runs ``coffer`` with a client that talks to ``server``; remembers the credentials."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.credentials: list[Credentials] = []
        self.hooks = CliHooks(client_factory=self._client, poll_interval=0)

    def _client(self, credentials: Credentials) -> CofferClient:
        self.credentials.append(credentials)
        return CofferClient.from_credentials(
            credentials, transport=httpx.MockTransport(self.server)
        )

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(app, list(args), obj=self.hooks, input=input)


def fault(status: int, name: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={name: {"code": status, "message": message}})


def ok(**body: Any) -> httpx.Response:
    return httpx.Response(200, json=body)


def view(status: str = "ACTIVE", operating: str = "HEALTHY", **extra: Any) -> dict[str, Any]:
    return {
        "id": "i-1",
        "name": "shop",
        "status": status,
        "operating_status": operating,
        "flavor": {"id": "small"},
        "datastore": {"type": "postgresql", "version": "15"},
        "volume": {"size": 2},
        "ip": ["127.0.0.1"],
        "port": 15001,
        **extra,
    }


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real credentials, data directory or checkout leaks into a test."""
    for name in ("COFFER_ENDPOINT", "COFFER_TOKEN", "COFFER_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def server() -> FakeServer:
    server = FakeServer()
    server.on("GET", "/instances/i-1", ok(instance=view()))
    return server


@pytest.fixture
def cli(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("COFFER_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("COFFER_TOKEN", "tok")
    return Cli(server)


def error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# --------------------------------------------------------------------------- instance create


CREATE_ARGS = (
    "instance", "create", "shop", "--datastore", "postgresql", "--flavor", "small",
    "--size", "2", "--database", "shop", "--database", "audit",
    "--user", "app:s3cret:x", "--user", "ro:pw",
)  # fmt: skip


def test_create_sends_trove_body_with_users_on_every_database(cli: Cli, server: FakeServer) -> None:
    server.on("POST", "/instances", ok(instance=view("BUILD", "")))
    result = cli(*CREATE_ARGS, "--datastore-version", "15")
    assert result.exit_code == 0, result.output
    all_dbs = [{"name": "shop"}, {"name": "audit"}]
    assert server.bodies("POST") == [
        {
            "instance": {
                "name": "shop",
                "flavorRef": "small",
                "volume": {"size": 2},
                "datastore": {"type": "postgresql", "version": "15"},
                "databases": all_dbs,
                "users": [
                    {"name": "app", "password": "s3cret:x", "databases": all_dbs},
                    {"name": "ro", "password": "pw", "databases": all_dbs},
                ],
            }
        }
    ]
    assert "BUILD" in result.stdout
    assert "s3cret" not in result.output


def test_create_wait_prints_connection_without_password(cli: Cli, server: FakeServer) -> None:
    server.on("POST", "/instances", ok(instance=view("BUILD", "")))
    server.on(
        "GET",
        "/instances/i-1",
        ok(instance=view("BUILD", "")),
        ok(instance=view("ACTIVE", "BUILD")),
        ok(instance=view()),
    )
    result = cli(*CREATE_ARGS, "--wait")
    assert result.exit_code == 0, result.output
    assert 'psql "host=127.0.0.1 port=15001 user=app dbname=shop"' in result.stdout
    assert "postgresql://app@127.0.0.1:15001/shop" in result.stdout
    assert "127.0.0.1:15001" in result.stdout
    assert "s3cret" not in result.output
    assert server.calls().count("GET /v1.0/p1/instances/i-1") == 3


def test_create_wait_json_prints_final_instance(cli: Cli, server: FakeServer) -> None:
    server.on("POST", "/instances", ok(instance=view("BUILD", "")))
    result = cli(*CREATE_ARGS, "--wait", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["instance"]["operating_status"] == "HEALTHY"


def test_create_wait_on_error_prints_fault_and_exits_1(cli: Cli, server: FakeServer) -> None:
    server.on("POST", "/instances", ok(instance=view("BUILD", "")))
    failed = view("ERROR", "", fault={"message": "initdb: disk full", "created": "t"})
    server.on("GET", "/instances/i-1", ok(instance=view("BUILD", "")), ok(instance=failed))
    result = cli(*CREATE_ARGS, "--wait")
    assert result.exit_code == 1
    assert "initdb: disk full" in error_line(result)
    assert "Traceback" not in result.output


def test_create_wait_times_out(cli: Cli, server: FakeServer) -> None:
    server.on("POST", "/instances", ok(instance=view("BUILD", "")))
    server.on("GET", "/instances/i-1", ok(instance=view("BUILD", "")))
    result = cli(*CREATE_ARGS, "--wait", "--timeout", "0")
    assert result.exit_code == 1
    assert "not ready after 0s" in error_line(result)


def test_create_rejects_user_without_password(cli: Cli, server: FakeServer) -> None:
    result = cli("instance", "create", "x", "--datastore", "postgresql", "--flavor", "s",
                 "--user", "app")  # fmt: skip
    assert result.exit_code == 2
    assert server.requests == []


# --------------------------------------------------------------------------- other instance ops


def test_list_table_and_json(cli: Cli, server: FakeServer) -> None:
    server.on("GET", "/instances", ok(instances=[view()]))
    table = cli("instance", "list")
    assert table.exit_code == 0, table.output
    assert "shop" in table.stdout
    assert "127.0.0.1:15001" in table.stdout
    as_json = cli("--json", "instance", "list")
    assert json.loads(as_json.stdout) == {"instances": [view()]}


def test_show_by_name_and_ambiguous_name(cli: Cli, server: FakeServer) -> None:
    server.on("GET", "/instances", ok(instances=[view()]))
    result = cli("instance", "show", "shop", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["instance"]["id"] == "i-1"
    server.on("GET", "/instances", ok(instances=[view(), view(id="i-2")]))
    result = cli("instance", "show", "shop")
    assert result.exit_code == 1
    assert "use the id" in error_line(result)


def test_show_table_has_url(cli: Cli) -> None:
    result = cli("instance", "show", "i-1")
    assert result.exit_code == 0, result.output
    assert "postgresql://127.0.0.1:15001" in result.stdout


def test_actions_send_trove_bodies(cli: Cli, server: FakeServer) -> None:
    server.on("POST", "/instances/i-1/action", httpx.Response(202))
    server.on("PUT", "/instances/i-1", httpx.Response(202))
    for args in (
        ("restart", "i-1"),
        ("resize-flavor", "i-1", "large"),
        ("resize-volume", "i-1", "5"),
        ("reset-status", "i-1"),
        ("rename", "i-1", "shop2"),
    ):
        result = cli("instance", *args)
        assert result.exit_code == 0, result.output
    assert server.bodies("POST") == [
        {"restart": {}},
        {"resize": {"flavorRef": "large"}},
        {"resize": {"volume": {"size": 5}}},
        {"reset_status": {}},
    ]
    assert server.bodies("PUT") == [{"instance": {"name": "shop2"}}]


def test_restart_wait_polls_until_healthy(cli: Cli, server: FakeServer) -> None:
    server.on("POST", "/instances/i-1/action", httpx.Response(202))
    server.on(
        "GET",
        "/instances/i-1",
        ok(instance=view()),  # name lookup
        ok(instance=view("REBOOT", "")),
        ok(instance=view()),
    )
    result = cli("instance", "restart", "i-1", "--wait")
    assert result.exit_code == 0, result.output
    assert "ACTIVE / HEALTHY" in result.stdout


def test_delete_wait_ends_on_404(cli: Cli, server: FakeServer) -> None:
    server.on("DELETE", "/instances/i-1", httpx.Response(202))
    server.on(
        "GET",
        "/instances/i-1",
        ok(instance=view()),
        ok(instance=view("SHUTDOWN", "")),
        fault(404, "itemNotFound", "gone"),
    )
    result = cli("instance", "delete", "i-1", "--wait")
    assert result.exit_code == 0, result.output
    assert "deleted shop" in result.stdout
    assert "DELETE /v1.0/p1/instances/i-1" in server.calls()


# --------------------------------------------------------------------------- errors


def test_api_error_is_one_line_and_exit_1(cli: Cli, server: FakeServer) -> None:
    server.on("GET", "/flavors/huge", fault(404, "itemNotFound", "Flavor huge not found"))
    result = cli("flavor", "show", "huge")
    assert result.exit_code == 1
    assert error_line(result) == "error: Flavor huge not found (HTTP 404)"
    assert result.stdout == ""


def test_unreachable_server_names_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COFFER_ENDPOINT", "http://127.0.0.1:1/v1.0/p1")
    monkeypatch.setenv("COFFER_TOKEN", "tok")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    hooks = CliHooks(
        client_factory=lambda c: CofferClient.from_credentials(
            c, transport=httpx.MockTransport(refuse)
        )
    )
    result = CliRunner().invoke(app, ["flavor", "list"], obj=hooks)
    assert result.exit_code == 1
    assert "http://127.0.0.1:1/v1.0/p1/flavors" in error_line(result)


def test_quota_update_without_limits_is_a_usage_error(cli: Cli, server: FakeServer) -> None:
    result = cli("quota", "update", "p2")
    assert result.exit_code == 2
    assert server.requests == []


# --------------------------------------------------------------------------- credentials


def write_credentials(directory: Path, endpoint: str, token: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    creds = {"endpoint": endpoint, "project_id": endpoint.rsplit("/", 1)[-1], "token": token}
    (directory / "credentials.json").write_text(json.dumps(creds))
    return directory


def flavors(server: FakeServer) -> FakeServer:
    server.on("GET", "/flavors", ok(flavors=[]))
    return server


def test_env_vars_win_over_credentials_files(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = write_credentials(tmp_path / "d", "http://file/v1.0/pf", "file-token")
    monkeypatch.setenv("COFFER_ENDPOINT", "http://env/v1.0/pe/")
    monkeypatch.setenv("COFFER_TOKEN", "env-token")
    cli = Cli(flavors(server))
    assert cli("--data-dir", str(data), "flavor", "list").exit_code == 0
    assert cli.credentials == [
        {"endpoint": "http://env/v1.0/pe", "project_id": "pe", "token": "env-token"}
    ]
    assert server.requests[0].headers["X-Auth-Token"] == "env-token"


def test_data_dir_option_beats_data_dir_env(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    option_dir = write_credentials(tmp_path / "opt", "http://opt/v1.0/po", "opt-token")
    env_dir = write_credentials(tmp_path / "env", "http://env/v1.0/pe", "env-token")
    monkeypatch.setenv("COFFER_DATA_DIR", str(env_dir))
    cli = Cli(flavors(server))
    assert cli("--data-dir", str(option_dir), "flavor", "list").exit_code == 0
    assert cli("flavor", "list").exit_code == 0
    assert [c["token"] for c in cli.credentials] == ["opt-token", "env-token"]


def test_default_data_dir_is_the_checkout_var(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    checkout = tmp_path / "coffer-src"
    (checkout / "src" / "coffer").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text('[project]\nname = "coffer"\n')
    write_credentials(checkout / "var", "http://co/v1.0/pc", "checkout-token")
    monkeypatch.chdir(checkout / "src")
    assert find_checkout() == checkout.resolve()
    assert default_data_dir() == checkout.resolve() / "var"
    cli = Cli(flavors(server))
    assert cli("flavor", "list").exit_code == 0
    assert cli.credentials[0]["token"] == "checkout-token"


def test_other_projects_are_not_a_checkout(tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / "src" / "coffer").mkdir(parents=True)
    (other / "pyproject.toml").write_text('[project]\nname = "not-coffer"\n')
    assert find_checkout(other) is None
    assert default_data_dir(other) == Path.home() / ".local" / "share" / "coffer"


def test_default_data_dir_outside_a_checkout_is_in_home(server: FakeServer) -> None:
    write_credentials(Path.home() / ".local" / "share" / "coffer", "http://h/v1.0/ph", "home-tok")
    cli = Cli(flavors(server))
    assert cli("flavor", "list").exit_code == 0
    assert cli.credentials[0]["token"] == "home-tok"


def test_missing_credentials_say_where_they_were_looked_for(
    server: FakeServer, tmp_path: Path
) -> None:
    result = Cli(server)("--data-dir", str(tmp_path / "nowhere"), "flavor", "list")
    assert result.exit_code == 1
    line = error_line(result)
    assert str(tmp_path / "nowhere" / "credentials.json") in line
    assert "COFFER_ENDPOINT" in line and "COFFER_TOKEN" in line


def test_half_set_env_is_an_error(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COFFER_ENDPOINT", ENDPOINT)
    result = Cli(server)("flavor", "list")
    assert result.exit_code == 1
    assert "COFFER_TOKEN is not" in error_line(result)


# --------------------------------------------------------------------------- users, databases, root


def test_user_commands_percent_encode_name_at_host(cli: Cli, server: FakeServer) -> None:
    path = "/instances/i-1/users/bob%4010.0.0.2"
    server.on("PUT", path, httpx.Response(202))
    server.on("GET", path, ok(user={"name": "bob", "host": "10.0.0.2", "databases": []}))
    server.on("DELETE", path, httpx.Response(202))
    server.on("PUT", f"{path}/databases", httpx.Response(202))
    server.on("DELETE", f"{path}/databases/shop", httpx.Response(202))
    server.on("GET", f"{path}/databases", ok(databases=[{"name": "shop"}]))
    host = ("--host", "10.0.0.2")
    for args in (
        ("update", "i-1", "bob", *host, "--new-password", "pw2", "--new-host", "10.0.0.1"),
        ("show", "i-1", "bob", *host),
        ("grant", "i-1", "bob", "shop", "crm", *host),
        ("revoke", "i-1", "bob", "shop", *host),
        ("access", "i-1", "bob", *host, "--json"),
        ("delete", "i-1", "bob", *host),
    ):
        result = cli("user", *args)
        assert result.exit_code == 0, (args, result.output)
    user_calls = [c for c in server.calls() if "/users/" in c]
    assert user_calls == [
        f"PUT /v1.0/p1{path}",
        f"GET /v1.0/p1{path}",
        f"PUT /v1.0/p1{path}/databases",
        f"DELETE /v1.0/p1{path}/databases/shop",
        f"GET /v1.0/p1{path}/databases",
        f"DELETE /v1.0/p1{path}",
    ]
    assert server.bodies("PUT") == [
        {"user": {"password": "pw2", "host": "10.0.0.1"}},
        {"databases": [{"name": "shop"}, {"name": "crm"}]},
    ]


def test_user_create_and_list(cli: Cli, server: FakeServer) -> None:
    server.on("POST", "/instances/i-1/users", httpx.Response(202))
    users = [{"name": "app", "host": "%", "databases": [{"name": "shop"}]}]
    server.on("GET", "/instances/i-1/users", ok(users=users))
    result = cli("user", "create", "i-1", "app", "pw", "--database", "shop")
    assert result.exit_code == 0, result.output
    assert server.bodies("POST") == [
        {"users": [{"name": "app", "password": "pw", "databases": [{"name": "shop"}]}]}
    ]
    listed = cli("user", "list", "i-1")
    assert "app" in listed.stdout and "shop" in listed.stdout


def test_user_create_prompts_for_password(cli: Cli, server: FakeServer) -> None:
    server.on("POST", "/instances/i-1/users", httpx.Response(202))
    result = cli("user", "create", "i-1", "app", input="hidden\nhidden\n")
    assert result.exit_code == 0, result.output
    assert server.bodies("POST") == [{"users": [{"name": "app", "password": "hidden"}]}]


def test_database_commands(cli: Cli, server: FakeServer) -> None:
    server.on("POST", "/instances/i-1/databases", httpx.Response(202))
    server.on("DELETE", "/instances/i-1/databases/old", httpx.Response(202))
    server.on("GET", "/instances/i-1/databases", ok(databases=[{"name": "shop"}]))
    assert cli("database", "create", "i-1", "shop", "crm").exit_code == 0
    assert cli("database", "delete", "i-1", "old").exit_code == 0
    listed = cli("database", "list", "i-1", "--json")
    assert json.loads(listed.stdout) == {"databases": [{"name": "shop"}]}
    assert server.bodies("POST") == [{"databases": [{"name": "shop"}, {"name": "crm"}]}]


def test_root_commands(cli: Cli, server: FakeServer) -> None:
    server.on("POST", "/instances/i-1/root", ok(user={"name": "postgres", "password": "gen"}))
    server.on("GET", "/instances/i-1/root", ok(rootEnabled=True))
    server.on("DELETE", "/instances/i-1/root", httpx.Response(204))
    enabled = cli("root", "enable", "i-1", "--json")
    assert json.loads(enabled.stdout) == {"user": {"name": "postgres", "password": "gen"}}
    assert json.loads(cli("root", "show", "i-1", "--json").stdout) == {"rootEnabled": True}
    assert cli("root", "disable", "i-1").exit_code == 0


# --------------------------------------------------------------------------- catalog, quotas, admin


def test_flavor_and_datastore_commands(cli: Cli, server: FakeServer) -> None:
    flavor = {"id": None, "str_id": "small", "name": "small", "ram": 512, "vcpus": 1}
    server.on("GET", "/flavors", ok(flavors=[flavor]))
    server.on("POST", "/flavors", ok(flavor={**flavor, "id": "tiny"}))
    ds = {"id": "d1", "name": "postgresql", "default_version": "v1",
          "versions": [{"id": "v1", "name": "15"}]}  # fmt: skip
    server.on("GET", "/datastores", ok(datastores=[ds]))
    server.on("GET", "/datastores/postgresql/versions/15", ok(version={"id": "v1", "name": "15"}))
    assert "small" in cli("flavor", "list").stdout
    created = cli("flavor", "create", "tiny", "--ram", "256", "--vcpus", "1", "--id", "tiny")
    assert created.exit_code == 0, created.output
    assert server.bodies("POST") == [
        {"flavor": {"name": "tiny", "ram": 256, "vcpus": 1, "id": "tiny"}}
    ]
    assert "15" in cli("datastore", "list").stdout
    version = cli("datastore", "versions", "postgresql", "15", "--json")
    assert json.loads(version.stdout) == {"version": {"id": "v1", "name": "15"}}


def test_quota_show_and_update(cli: Cli, server: FakeServer) -> None:
    quotas = [{"resource": "instances", "in_use": 1, "reserved": 0, "limit": 10}]
    server.on("GET", "/mgmt/quotas/p1", ok(quotas=quotas))
    server.on("PUT", "/mgmt/quotas/p2", ok(quotas={"instances": 5, "ram": 4096, "volumes": 20}))
    shown = cli("quota", "show")
    assert shown.exit_code == 0 and "instances" in shown.stdout
    result = cli("quota", "update", "p2", "--instances", "5", "--ram", "4096", "--volumes", "20")
    assert result.exit_code == 0, result.output
    assert server.bodies("PUT") == [{"quotas": {"instances": 5, "ram": 4096, "volumes": 20}}]


def test_limits(cli: Cli, server: FakeServer) -> None:
    limits = [
        {"verb": "ABSOLUTE", "max_instances": 10, "max_ram": -1},
        {"verb": "POST", "uri": "*", "value": 200, "remaining": 199, "unit": "MINUTE"},
    ]
    server.on("GET", "/limits", ok(limits=limits))
    result = cli("limits")
    assert result.exit_code == 0, result.output
    assert "instances" in result.stdout and "MINUTE" in result.stdout
    assert json.loads(cli("limits", "--json").stdout) == {"limits": limits}


def test_project_and_token_create_json_is_exactly_the_credentials(
    cli: Cli, server: FakeServer
) -> None:
    creds = {"endpoint": "http://coffer.test:8779/v1.0/p2", "project_id": "p2", "token": "t2"}
    server.on("POST", "/mgmt/projects", ok(project={"id": "p2", "name": "web"}, credentials=creds))
    server.on("POST", "/mgmt/tokens", ok(credentials=creds))
    server.on("GET", "/mgmt/projects", ok(projects=[{"id": "p2", "name": "web"}]))
    project = cli("project", "create", "web", "--json")
    assert project.exit_code == 0, project.output
    assert json.loads(project.stdout) == creds
    token = cli("token", "create", "--project", "web", "--json")
    assert json.loads(token.stdout) == creds
    assert server.bodies("POST") == [{"project": {"name": "web"}}, {"token": {"project": "web"}}]
    assert "web" in cli("project", "list").stdout


# --------------------------------------------------------------------------- connection strings


def test_connection_formats_never_hold_a_password() -> None:
    target = ConnectionTarget("10.0.0.5", 3306, "app", "shop")
    assert CONNECTION_FORMATS["mariadb"].url(target) == "mysql://app@10.0.0.5:3306/shop"
    assert CONNECTION_FORMATS["mariadb"].shell_command(target) == (
        "mariadb -h 10.0.0.5 -P 3306 -u app -p shop"
    )
    redis = ConnectionTarget("::1", 6379, None, None)
    assert CONNECTION_FORMATS["redis"].url(redis) == "redis://[::1]:6379"
    assert CONNECTION_FORMATS["redis"].shell_command(redis) == "redis-cli -h ::1 -p 6379"
    spaced = ConnectionTarget("h", 5432, "app", "my db")
    assert CONNECTION_FORMATS["postgresql"].shell_command(spaced) == (
        "psql \"host=h port=5432 user=app dbname='my db'\""
    )


def test_connection_target_uses_hostname_when_no_ip() -> None:
    target = connection_target({"hostname": "db.local", "port": 5432})
    assert target == ConnectionTarget("db.local", 5432)
    assert connection_target({"ip": ["1.2.3.4"]}) is None
