"""Redis catalog rules, configuration rendering and ACL text (pure code, no engine)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from coffer.contracts.engine import DatabaseSpec, InstanceSpec, UserSpec
from coffer.engines import catalog as engine_catalog
from coffer.engines.base import InstancePaths
from coffer.engines.redis.acl import (
    DEFAULT_LINE,
    acl_file_with_coffer_users,
    admin_line,
    password_hash,
    root_rules,
    tenant_rules,
)
from coffer.engines.redis.catalog import (
    CATALOG,
    PARAMETER_DEFAULTS,
    PARAMETER_RULES,
    check_parameter,
)
from coffer.engines.redis.config import (
    cluster_marker,
    cluster_settings,
    live_settings,
    render_config,
    render_value,
    server_settings,
)
from coffer.errors import BadRequest, EngineError, NotImplementedByDatastore

PATHS = InstancePaths(root=Path("/srv/coffer/instances/inst-1"), os_user="cf-inst1")

GOOD_NAMES = ["app", "App_2", "_x", "my-app", "svc.reader", "a" * 64]
BAD_NAMES = [
    "",
    "a" * 65,
    "1abc",
    "-abc",
    ".abc",
    "my app",
    "tab\tname",
    "new\nline",
    "café",
    "a>b",
    "~keys",
    "+@all",
    "na#me",
]


def spec(**overrides: object) -> InstanceSpec:
    values: dict[str, object] = {
        "instance_id": "inst-1",
        "engine": "redis",
        "version": "7.0",
        "port": 22001,
        "ram_mb": 1024,
        "vcpus": 1,
        "volume_gb": 1,
    }
    values.update(overrides)
    return InstanceSpec.model_validate(values)


def test_registry_exposes_the_catalog_without_importing_redis() -> None:
    code = (
        "import sys, coffer.engines as e; c = e.catalog('redis');"
        "assert c.name == 'redis' and c.versions == ('7.0',) and c.default_version == '7.0';"
        "assert 'redis' not in sys.modules, 'catalog imported redis-py'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert engine_catalog("redis") is CATALOG


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_user_names_are_accepted(name: str) -> None:
    CATALOG.validate_user(UserSpec(name=name, password="pw"))


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_user_names_are_refused_with_the_name_in_the_message(name: str) -> None:
    with pytest.raises(BadRequest) as error:
        CATALOG.validate_user(UserSpec(name=name, password="pw"))
    if name:
        assert repr(name) in error.value.message


@pytest.mark.parametrize(
    "name", ["default", "Default", "root", "ROOT", "coffer-admin", "coffer_repl", "COFFER"]
)
def test_redis_and_coffer_users_are_reserved(name: str) -> None:
    with pytest.raises(BadRequest, match="reserved"):
        CATALOG.validate_user(UserSpec(name=name, password="pw"))


def test_user_needs_a_password_any_host_and_no_databases() -> None:
    with pytest.raises(BadRequest, match="password"):
        CATALOG.validate_user(UserSpec(name="app"))
    with pytest.raises(BadRequest, match="password"):
        CATALOG.validate_user(UserSpec(name="app", password=""))
    with pytest.raises(BadRequest, match="not tied to a host"):
        CATALOG.validate_user(UserSpec(name="app", host="10.0.0.1", password="pw"))
    with pytest.raises(NotImplementedByDatastore, match="Redis has no databases"):
        CATALOG.validate_user(UserSpec(name="app", password="pw", databases=("shop",)))


def test_databases_are_not_a_redis_notion() -> None:
    with pytest.raises(NotImplementedByDatastore, match="key prefixes"):
        CATALOG.validate_database(DatabaseSpec(name="shop"))


def test_memory_settings_follow_ram_and_never_evict_by_default() -> None:
    small = CATALOG.memory_settings(256)
    assert small == {
        "maxmemory": str(192 * 1024 * 1024),
        "maxmemory-policy": "noeviction",
        "maxclients": "1000",
    }
    assert CATALOG.memory_settings(2048)["maxclients"] == "2000"
    assert CATALOG.memory_settings(1 << 20)["maxclients"] == "10000"
    previous = (0, 0)
    for ram_mb in [1, 64, 256, 1023, 1024, 1025, 4096, 16384, 262144]:
        settings = CATALOG.memory_settings(ram_mb)
        current = (int(settings["maxmemory"]), int(settings["maxclients"]))
        assert current >= previous and current[0] <= ram_mb * 1024 * 1024
        previous = current
    with pytest.raises(BadRequest):
        CATALOG.memory_settings(0)


def test_parameter_rules_cover_the_useful_set() -> None:
    rules = {rule.name: rule for rule in CATALOG.parameter_rules("7.0")}
    assert {
        "maxmemory-policy",
        "timeout",
        "notify-keyspace-events",
        "tcp-keepalive",
        "slowlog-log-slower-than",
        "slowlog-max-len",
        "hz",
        "appendfsync",
        "maxclients",
        "databases",
        "lazyfree-lazy-eviction",
    } <= set(rules)
    assert [name for name, rule in rules.items() if rule.restart_required] == ["databases"]
    assert rules["maxmemory-policy"].choices is not None
    assert "noeviction" in rules["maxmemory-policy"].choices
    assert rules["appendfsync"].choices == ("everysec", "always", "no")
    assert (rules["timeout"].type, rules["timeout"].min, rules["timeout"].max) == (
        "integer",
        0,
        2**31 - 1,
    )
    assert (rules["hz"].min, rules["hz"].max) == (1, 500)
    assert rules["slowlog-log-slower-than"].min == -1
    assert rules["lazyfree-lazy-eviction"].type == "boolean"


def test_every_rule_has_a_default_that_obeys_it() -> None:
    assert set(PARAMETER_DEFAULTS) == {rule.name for rule in PARAMETER_RULES}
    for name, value in PARAMETER_DEFAULTS.items():
        check_parameter(name, value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("dir", "/etc", "managed by Coffer"),
        ("loadmodule", "/tmp/evil.so", "managed by Coffer"),
        ("rename-command", "CONFIG ''", "managed by Coffer"),
        ("requirepass", "pw", "managed by Coffer"),
        ("maxmemory", 1, "managed by Coffer"),
        ("no-such-setting", 1, "not a Redis parameter"),
        ("timeout", "10", "integer"),
        ("timeout", True, "integer"),
        ("timeout", -1, "between 0 and"),
        ("hz", 501, "between 1 and 500"),
        ("maxmemory-policy", "evict-everything", "one of"),
        ("notify-keyspace-events", 'Ex"\nloadmodule x', "event classes"),
        ("notify-keyspace-events", "Q", "event classes"),
        ("lazyfree-lazy-eviction", "yes", "boolean"),
    ],
)
def test_refused_parameters_are_named(name: str, value: object, message: str) -> None:
    with pytest.raises(BadRequest, match=message) as error:
        check_parameter(name, value)
    assert repr(name) in error.value.message


def test_server_settings_pin_what_coffer_manages() -> None:
    settings = server_settings(spec(parameters={"timeout": 30}), PATHS)
    root = "/srv/coffer/instances/inst-1"
    assert settings["port"] == 22001
    assert settings["bind"] == ("127.0.0.1",)
    assert settings["unixsocket"] == f"{root}/run/redis.sock"
    assert settings["unixsocketperm"] == "700"
    assert settings["pidfile"] == f"{root}/run/redis.pid"
    assert settings["dir"] == f"{root}/data"
    assert settings["aclfile"] == f"{root}/data/users.acl"
    assert settings["appendonly"] is True and settings["appendfsync"] == "everysec"
    assert settings["save"] == ("3600", "1", "300", "100", "60", "10000")
    assert settings["logfile"] == "" and settings["daemonize"] is False
    assert settings["protected-mode"] is True
    assert settings["repl-diskless-sync-delay"] == 0
    for switch in ("enable-protected-configs", "enable-debug-command", "enable-module-command"):
        assert settings[switch] == "no"
    assert settings["maxmemory"] == str(768 * 1024 * 1024)
    assert settings["maxmemory-policy"] == "noeviction"
    assert settings["timeout"] == 30 and settings["databases"] == 16


def test_parameters_override_defaults_and_flavor_but_not_managed_settings() -> None:
    settings = server_settings(
        spec(parameters={"maxmemory-policy": "allkeys-lru", "maxclients": 50}), PATHS
    )
    assert settings["maxmemory-policy"] == "allkeys-lru" and settings["maxclients"] == 50
    for refused in ({"dir": "/etc"}, {"aclfile": "/tmp/x"}, {"include": "/etc/passwd"}):
        with pytest.raises(BadRequest, match="managed by Coffer"):
            server_settings(spec(parameters=refused), PATHS)


def test_rendered_configuration_has_each_directive_once_and_no_secrets() -> None:
    text = render_config(server_settings(spec(parameters={"notify-keyspace-events": "Ex$"}), PATHS))
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    names = [line.split()[0] for line in lines]
    assert len(names) == len(set(names))
    assert "requirepass" not in names and "user" not in names and "include" not in names
    assert 'notify-keyspace-events "Ex$"' in lines
    assert 'logfile ""' in lines
    assert "appendonly yes" in lines and "daemonize no" in lines
    assert "save 3600 1 300 100 60 10000" in lines


def test_bind_addresses() -> None:
    assert server_settings(spec(bind_host="*"), PATHS)["bind"] == ("*", "-::*")
    assert server_settings(spec(bind_host="::1"), PATHS)["bind"] == ("::1",)
    assert "bind * -::*\n" in render_config(server_settings(spec(bind_host="*"), PATHS))
    with pytest.raises(BadRequest, match="bind host"):
        server_settings(spec(bind_host="127.0.0.1 0.0.0.0"), PATHS)
    with pytest.raises(BadRequest, match="port"):
        server_settings(spec(port=70000), PATHS)


def test_instance_paths_redis_cannot_use_are_refused() -> None:
    long_root = InstancePaths(root=Path("/srv/" + "x" * 100), os_user="cf-x")
    with pytest.raises(EngineError, match="longer than 107 bytes"):
        server_settings(spec(), long_root)
    odd_root = InstancePaths(root=Path("/srv/my instance"), os_user="cf-x")
    with pytest.raises(EngineError, match="absolute path"):
        server_settings(spec(), odd_root)


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (True, "yes"),
        (False, "no"),
        (42, "42"),
        ("everysec", "everysec"),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        (("*", "-::*"), "* -::*"),
    ],
)
def test_values_are_rendered_as_redis_arguments(value: object, rendered: str) -> None:
    assert render_value(value) == rendered  # type: ignore[arg-type]


def test_control_characters_are_never_rendered() -> None:
    with pytest.raises(BadRequest, match="control characters"):
        render_value("x\nloadmodule /tmp/evil.so")


def test_live_settings_reset_removed_parameters_and_follow_the_flavor() -> None:
    live = live_settings(spec(ram_mb=512, parameters={"timeout": 60, "databases": 4}))
    assert live["timeout"] == "60"
    assert live["maxmemory"] == str(384 * 1024 * 1024)
    assert live["lazyfree-lazy-eviction"] == "no"
    assert "databases" not in live  # restart-required: applied at the next start
    assert live_settings(spec(ram_mb=512))["timeout"] == "0"
    assert "port" not in live and "dir" not in live


def test_acl_rules_carry_hashes_never_passwords() -> None:
    digest = hashlib.sha256(b"s3cret").hexdigest()
    assert password_hash("s3cret") == digest
    tenant = tenant_rules("s3cret")
    assert tenant[:3] == ["reset", "on", f"#{digest}"]
    assert "-@admin" in tenant and "+@all" in tenant and "-migrate" in tenant
    assert not any("s3cret" in rule for rule in tenant)
    root = root_rules("s3cret")
    assert "-@admin" in root and "+bgsave" in root
    assert not {"+config", "+acl", "+shutdown", "+@admin", "+debug", "+module"} & set(root)


def test_a_new_acl_file_disables_the_default_user_and_holds_the_admin() -> None:
    text = acl_file_with_coffer_users("", "admin-pw")
    assert text.splitlines() == [admin_line("admin-pw"), DEFAULT_LINE]
    assert "admin-pw" not in text
    assert acl_file_with_coffer_users(text, "admin-pw") is text


def test_the_acl_file_is_repaired_without_losing_users() -> None:
    saved = (
        "user app on sanitize-payload #abc ~* &* +@all -@admin -migrate\n"
        f"{admin_line('old-pw')}\n"
        "user default on nopass ~* &* +@all\n"
    )
    repaired = acl_file_with_coffer_users(saved, "new-pw")
    assert repaired.splitlines() == [
        "user app on sanitize-payload #abc ~* &* +@all -@admin -migrate",
        admin_line("new-pw"),
        DEFAULT_LINE,
    ]
    # the same rules in another order, as Redis may write them, are left alone
    reordered = f"user coffer-admin ~* &* on #{password_hash('new-pw')} +@all\n{DEFAULT_LINE}\n"
    assert acl_file_with_coffer_users(reordered, "new-pw") is reordered


def _marker(bus_port: int | None) -> str:
    return cluster_marker(
        user="coffer_replicator",
        password="secret",
        node_timeout_ms=2000,
        announce_ip=None,
        bus_port=bus_port,
    )


def test_cluster_marker_renders_its_bus_port() -> None:
    settings = cluster_settings(_marker(25123), PATHS)
    assert settings["cluster-enabled"] is True and settings["cluster-port"] == 25123
    assert "cluster-port" not in cluster_settings(_marker(None), PATHS)  # Redis: port + 10000


@pytest.mark.parametrize("bus_port", [0, 65536])
def test_cluster_marker_refuses_a_bus_port_outside_the_port_range(bus_port: int) -> None:
    with pytest.raises(BadRequest, match=f"cluster bus port {bus_port} is outside 1-65535"):
        _marker(bus_port)


def test_a_damaged_bus_port_in_the_marker_is_an_engine_error() -> None:
    damaged = _marker(25123).replace("25123", '"25123"')
    with pytest.raises(EngineError, match="damaged"):
        cluster_settings(damaged, PATHS)
