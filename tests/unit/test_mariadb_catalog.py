"""MariaDB catalog rules, configuration rendering and SQL text (pure code, no engine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coffer.contracts.engine import DatabaseSpec, InstanceSpec, UserSpec
from coffer.engines import catalog as engine_catalog
from coffer.engines import known_engines
from coffer.engines.base import InstancePaths
from coffer.engines.mariadb.catalog import (
    CATALOG,
    MEMORY_BUDGET_PERCENT,
    PARAMETER_RULES,
    SERVER_BASE_BYTES,
    host_matches,
    parse_size,
    worst_case_memory,
)
from coffer.engines.mariadb.config import (
    base_settings,
    render_settings,
    render_value,
    server_id,
    server_settings,
)
from coffer.engines.mariadb.statements import (
    ROOT_PRIVILEGES,
    create_database,
    grant_database,
    grant_pattern,
    password_hash,
    quote_identifier,
    set_global,
    unescape_grant_pattern,
)
from coffer.errors import BadRequest, EngineError

GOOD_NAMES = ["shop", "Shop_2", "_x", "my-app", "a" * 64]
BAD_NAMES = [
    "",
    "a" * 81,
    "1abc",
    "-abc",
    "sh`op",
    "sh'op",
    'sh"op',
    "shop;drop table x",
    "x`; DROP DATABASE mysql; --",
    "my app",
    "tab\tname",
    "new\nline",
    "café",
    "dot.name",
    "per%cent",
    "back\\slash",
]
PATHS = InstancePaths(root=Path("/srv/i"), os_user="cf-123")


def spec(**overrides: object) -> InstanceSpec:
    values: dict[str, object] = {
        "instance_id": "inst-1",
        "engine": "mariadb",
        "version": "10.11",
        "port": 21001,
        "ram_mb": 1024,
        "vcpus": 1,
        "volume_gb": 5,
    }
    values.update(overrides)
    return InstanceSpec.model_validate(values)


def test_registry_exposes_the_catalog_without_importing_pymysql() -> None:
    code = (
        "import sys, coffer.engines as e; c = e.catalog('mariadb');"
        "assert c.name == 'mariadb' and c.default_version in c.versions;"
        "assert 'pymysql' not in sys.modules, 'catalog imported pymysql'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert engine_catalog("mariadb") is CATALOG
    assert "mariadb" in known_engines()
    assert (CATALOG.versions, CATALOG.default_version) == (("10.11",), "10.11")


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names_are_accepted(name: str) -> None:
    CATALOG.validate_database(DatabaseSpec(name=name))
    CATALOG.validate_user(UserSpec(name=name, password="pw"))


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_with_the_name_in_the_message(name: str) -> None:
    with pytest.raises(BadRequest) as db_error:
        CATALOG.validate_database(DatabaseSpec(name=name))
    with pytest.raises(BadRequest) as user_error:
        CATALOG.validate_user(UserSpec(name=name, password="pw"))
    if name:
        assert repr(name) in db_error.value.message
        assert repr(name) in user_error.value.message


def test_user_names_may_be_longer_than_database_names() -> None:
    CATALOG.validate_user(UserSpec(name="u" * 80, password="pw"))
    with pytest.raises(BadRequest, match="longer than 80"):
        CATALOG.validate_user(UserSpec(name="u" * 81, password="pw"))
    with pytest.raises(BadRequest, match="longer than 64"):
        CATALOG.validate_database(DatabaseSpec(name="d" * 65))


@pytest.mark.parametrize(
    "name", ["mysql", "information_schema", "performance_schema", "sys", "MySQL", "SYS"]
)
def test_system_databases_are_reserved(name: str) -> None:
    with pytest.raises(BadRequest, match="reserved"):
        CATALOG.validate_database(DatabaseSpec(name=name))


@pytest.mark.parametrize(
    "name", ["root", "ROOT", "mysql", "PUBLIC", "public", "coffer_admin", "current_user"]
)
def test_internal_users_are_reserved(name: str) -> None:
    with pytest.raises(BadRequest, match="reserved"):
        CATALOG.validate_user(UserSpec(name=name, password="pw"))


def test_mariadb_sys_account_cannot_be_named() -> None:
    with pytest.raises(BadRequest, match=r"mariadb\.sys"):
        CATALOG.validate_user(UserSpec(name="mariadb.sys", password="pw"))


def test_user_needs_a_password_and_checked_databases() -> None:
    with pytest.raises(BadRequest, match="password"):
        CATALOG.validate_user(UserSpec(name="app"))
    with pytest.raises(BadRequest, match="password"):
        CATALOG.validate_user(UserSpec(name="app", password=""))
    with pytest.raises(BadRequest, match="'bad;db'"):
        CATALOG.validate_user(UserSpec(name="app", password="pw", databases=("bad;db",)))
    with pytest.raises(BadRequest, match="reserved"):
        CATALOG.validate_user(UserSpec(name="app", password="pw", databases=("mysql",)))


@pytest.mark.parametrize(
    "host",
    [
        "%",
        "localhost",
        "10.0.0.7",
        "10.0.0.%",
        "10.%",
        "192.168.%",
        "10.0.0.0/255.255.255.0",
        "172.16.0.0/255.240.0.0",
        "::1",
        "2001:db8::7",
    ],
)
def test_good_hosts_are_accepted(host: str) -> None:
    CATALOG.validate_user(UserSpec(name="app", host=host, password="pw"))


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("db.example.com", "host name"),
        ("myhost", "host name"),
        ("10.0.0.0/24", "netmask"),
        ("10.0.0.1/255.0.255.0", "not contiguous"),
        ("10.0.0.1/255.255.255.0", "outside its netmask"),
        ("2001:0db8::7", "'2001:db8::7'"),
        ("", "invalid"),
        ("10.0.0.%%", "invalid"),
        ("%.example.com", "invalid"),
        ("10.0.0.1'; DROP USER x; --", "invalid"),
        ("10.0.0.300", "host name"),
        ("local host", "invalid"),
    ],
)
def test_bad_hosts_are_refused_naming_them(host: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message) as error:
        CATALOG.validate_user(UserSpec(name="app", host=host, password="pw"))
    assert repr(host) in error.value.message


@pytest.mark.parametrize(
    ("pattern", "client", "matches"),
    [
        ("%", "203.0.113.9", True),
        ("%", "localhost", True),
        ("localhost", "localhost", True),
        ("localhost", "127.0.0.1", False),
        ("127.0.0.%", "127.0.0.1", True),
        ("127.0.0.%", "127.0.1.1", False),
        ("10.%", "10.200.3.4", True),
        ("10.0.0.0/255.255.255.0", "10.0.0.99", True),
        ("10.0.0.0/255.255.255.0", "10.0.1.99", False),
        ("10.0.0.0/255.255.255.0", "localhost", False),
        ("10.0.0.7", "10.0.0.7", True),
        ("10.0.0.7", "10.0.0.70", False),
    ],
)
def test_host_matching_follows_mariadb(pattern: str, client: str, matches: bool) -> None:
    assert host_matches(pattern, client) is matches


@pytest.mark.parametrize("charset", ["utf8mb4", "utf8", "utf8mb3", "latin1", "ascii", "UTF8MB4"])
def test_known_character_sets_are_accepted(charset: str) -> None:
    CATALOG.validate_database(DatabaseSpec(name="d", character_set=charset))


@pytest.mark.parametrize("charset", ["", "klingon", "utf-8", "utf8'; --", "latin1 "])
def test_unknown_character_sets_are_refused(charset: str) -> None:
    with pytest.raises(BadRequest, match="character set"):
        CATALOG.validate_database(DatabaseSpec(name="d", character_set=charset))


@pytest.mark.parametrize(
    "collate", ["utf8mb4_general_ci", "utf8mb4_unicode_520_ci", "latin1_bin", "binary"]
)
def test_collation_names_are_accepted(collate: str) -> None:
    CATALOG.validate_database(DatabaseSpec(name="d", collate=collate))


@pytest.mark.parametrize("collate", ["", "utf8 bin", "x'; --", "a" * 65, "_ci", "utf8__ci"])
def test_odd_collation_names_are_refused(collate: str) -> None:
    with pytest.raises(BadRequest, match="collation"):
        CATALOG.validate_database(DatabaseSpec(name="d", collate=collate))


def _numbers(settings: dict[str, str]) -> dict[str, int]:
    switches = {"ON": 1, "OFF": 0}
    return {k: switches[v] if v in switches else parse_size(v) for k, v in settings.items()}


def test_memory_settings_grow_with_ram() -> None:
    previous: dict[str, int] = {}
    for ram_mb in [*range(1, 5000, 7), 8192, 9216, 16384, 65536, 262144, 1 << 20]:
        current = _numbers(CATALOG.memory_settings(ram_mb))
        for key, value in previous.items():
            assert current[key] >= value, (key, ram_mb)
        previous = current


def test_memory_settings_follow_the_rules_of_thumb() -> None:
    small = CATALOG.memory_settings(256)
    assert small == {
        "innodb_buffer_pool_size": "90M",
        "innodb_log_file_size": "16M",
        "innodb_log_buffer_size": "2M",
        "key_buffer_size": "1M",
        "aria_pagecache_buffer_size": "8M",
        "aria_sort_buffer_size": "4M",
        "myisam_sort_buffer_size": "4M",
        "query_cache_size": "0",
        "table_open_cache": "128",
        "table_definition_cache": "400",
        "thread_cache_size": "4",
        "performance_schema": "OFF",
        "max_connections": "25",
        "tmp_table_size": "512K",
        "max_heap_table_size": "512K",
        "sort_buffer_size": "256K",
        "join_buffer_size": "32K",
        "join_buffer_space_limit": "256K",
        "read_buffer_size": "32K",
        "read_rnd_buffer_size": "64K",
        "mrr_buffer_size": "64K",
        "bulk_insert_buffer_size": "64K",
    }
    assert CATALOG.memory_settings(32)["innodb_buffer_pool_size"] == "32M"
    assert CATALOG.memory_settings(32)["max_connections"] == "10"
    assert CATALOG.memory_settings(512)["max_connections"] == "50"
    big = CATALOG.memory_settings(4096)
    assert big["innodb_buffer_pool_size"] == "2250M"
    assert big["innodb_log_file_size"] == "256M"
    assert big["max_connections"] == "250"
    assert big["performance_schema"] == "ON"
    assert (big["tmp_table_size"], big["sort_buffer_size"]) == ("1M", "512K")
    assert CATALOG.memory_settings(2047)["performance_schema"] == "OFF"
    assert CATALOG.memory_settings(2048)["performance_schema"] == "ON"
    assert CATALOG.memory_settings(1024)["max_connections"] == "100"
    huge = CATALOG.memory_settings(1 << 20)
    assert huge["max_connections"] == "500"
    assert huge["innodb_log_file_size"] == "2048M"
    # MariaDB's own defaults are the ceilings
    assert (huge["tmp_table_size"], huge["sort_buffer_size"], huge["key_buffer_size"]) == (
        "16M",
        "2M",
        "32M",
    )
    with pytest.raises(BadRequest):
        CATALOG.memory_settings(0)


@settings(max_examples=300)
@given(st.integers(min_value=256, max_value=65536))
def test_worst_case_memory_of_the_flavor_settings_fits_its_ram(ram_mb: int) -> None:
    sized = CATALOG.memory_settings(ram_mb)
    bound = worst_case_memory(sized)
    assert bound <= ram_mb * 1024 * 1024 * MEMORY_BUDGET_PERCENT // 100, (ram_mb, bound)
    # the bound counts what it should: the pool and every allowed connection's stack
    numbers = _numbers(sized)
    assert bound > numbers["innodb_buffer_pool_size"] + SERVER_BASE_BYTES
    assert bound > numbers["max_connections"] * 299008
    rendered = server_settings(spec(ram_mb=ram_mb, volume_gb=1), PATHS)
    assert worst_case_memory(rendered) == bound  # config renders exactly these sizes


def test_worst_case_memory_counts_mariadb_defaults_and_overrides() -> None:
    # MariaDB's defaults on a 256 MB flavor would promise far more than it has
    assert worst_case_memory({}) > 2 * 1024**3
    tiny = CATALOG.memory_settings(256)
    more_connections = worst_case_memory({**tiny, "max_connections": 200})
    assert more_connections > 256 * 1024 * 1024
    with_schema = worst_case_memory({**tiny, "performance_schema": True})
    assert with_schema - worst_case_memory(tiny) >= 96 * 1024 * 1024
    with pytest.raises(ValueError, match="sort_buffer_size"):
        worst_case_memory({"sort_buffer_size": 1.5})
    with pytest.raises(ValueError, match="not a size"):
        worst_case_memory({"sort_buffer_size": "lots"})


def test_group_values_win_and_lift_the_limits_that_would_cap_them() -> None:
    mib = 1024 * 1024
    raised = server_settings(
        spec(ram_mb=256, parameters={"tmp_table_size": 64 * mib, "join_buffer_size": 8 * mib}),
        PATHS,
    )
    assert (raised["tmp_table_size"], raised["max_heap_table_size"]) == (64 * mib, 64 * mib)
    assert (raised["join_buffer_size"], raised["join_buffer_space_limit"]) == (8 * mib, 8 * mib)
    both = server_settings(
        spec(parameters={"tmp_table_size": 64 * mib, "max_heap_table_size": 32 * mib}), PATHS
    )
    assert (both["tmp_table_size"], both["max_heap_table_size"]) == (64 * mib, 32 * mib)
    lowered = server_settings(spec(parameters={"tmp_table_size": 16384}), PATHS)
    assert lowered["max_heap_table_size"] == CATALOG.memory_settings(1024)["max_heap_table_size"]
    chosen = server_settings(
        spec(ram_mb=4096, parameters={"performance_schema": False, "table_open_cache": 50}), PATHS
    )
    assert (chosen["performance_schema"], chosen["table_open_cache"]) == (False, 50)
    assert base_settings(spec(parameters={"tmp_table_size": 64 * mib}))["max_heap_table_size"] == (
        64 * mib
    )


def test_parameter_rules_cover_the_issue_and_are_consistent() -> None:
    rules = {rule.name: rule for rule in CATALOG.parameter_rules("10.11")}
    assert rules["max_connections"].restart_required is False
    assert rules["long_query_time"].type == "float"
    assert rules["slow_query_log"].type == "boolean"
    assert (rules["innodb_log_file_size"].type, rules["innodb_log_file_size"].restart_required) == (
        "integer",
        True,
    )
    assert (
        rules["innodb_flush_log_at_trx_commit"].min,
        rules["innodb_flush_log_at_trx_commit"].max,
    ) == (0, 2)
    assert rules["character_set_server"].choices is not None
    assert "utf8mb4" in rules["character_set_server"].choices
    assert len(rules) == len(PARAMETER_RULES)
    for rule in PARAMETER_RULES:
        if rule.type in ("integer", "float"):
            assert rule.min is not None and rule.max is not None and rule.min < rule.max
        assert rule.description


@pytest.mark.parametrize(
    "params",
    [
        {"max_connections": 10},
        {"long_query_time": 0.25, "slow_query_log": True},
        {"slow_query_log": 0, "log_queries_not_using_indexes": 1},
        {"long_query_time": 2},
        {"character_set_server": "latin1"},
        {"sql_mode": "STRICT_ALL_TABLES,NO_ZERO_DATE"},
        {"sql_mode": ""},
        {"innodb_log_file_size": 64 * 1024 * 1024, "performance_schema": False},
    ],
)
def test_valid_parameters_are_accepted(params: dict[str, object]) -> None:
    CATALOG.validate_parameters(params)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"port": 3306}, "managed by Coffer"),
        ({"datadir": "/etc"}, "managed by Coffer"),
        ({"socket": "/tmp/x.sock"}, "managed by Coffer"),
        ({"bind_address": "0.0.0.0"}, "managed by Coffer"),
        ({"secure_file_priv": ""}, "managed by Coffer"),
        ({"log_bin": "x"}, "managed by Coffer"),
        ({"plugin_load_add": "ha_connect"}, "loads code or names files"),
        ({"init_file": "/etc/shadow"}, "loads code or names files"),
        ({"general_log_file": "/root/x"}, "loads code or names files"),
        ({"plugin-load-add": "x"}, "not a valid"),
        ({"loose_plugin_load_add": "x"}, "not a parameter Coffer lets"),
        ({"innodb_buffer_pool_siz": 1}, "not a parameter Coffer lets"),
        ({"max_connections": 5}, "at least 10"),
        ({"max_connections": 100001}, "at most"),
        ({"max_connections": 1.5}, "integer"),
        ({"max_connections": True}, "number"),
        ({"max_connections": "100"}, "number"),
        ({"long_query_time": float("nan")}, "finite"),
        ({"slow_query_log": 2}, "true or false"),
        ({"slow_query_log": "ON"}, "true or false"),
        ({"slow_query_log": 1.0}, "true or false"),
        ({"character_set_server": "klingon"}, "one of"),
        ({"sql_mode": "STRICT_ALL_TABLES,EVIL"}, "'EVIL'"),
        ({"sql_mode": "ANSI\ninit_file=/x"}, "not a MariaDB SQL mode"),
        ({"innodb_log_file_size": 1024}, "at least"),
    ],
)
def test_refused_parameters(params: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        server_settings(spec(parameters=params), PATHS)


def test_settings_put_managed_values_last_and_render_parameters() -> None:
    params = {"max_connections": 300, "long_query_time": 0.5, "slow_query_log": True}
    settings = server_settings(spec(parameters=params), PATHS)
    names = list(settings)
    assert names.index("innodb_buffer_pool_size") < names.index("datadir")
    assert settings["max_connections"] == 300
    assert settings["datadir"] == "/srv/i/data"
    assert settings["socket"] == "/srv/i/run/mariadbd.sock"
    assert settings["pid_file"] == "/srv/i/run/mariadbd.pid"
    assert settings["port"] == 21001
    assert settings["bind_address"] == "127.0.0.1"
    assert settings["skip_name_resolve"] is True
    assert settings["server_id"] == server_id("inst-1")
    assert settings["binlog_format"] == "ROW"
    assert settings["character_set_server"] == "utf8mb4"
    text = render_settings(settings)
    assert text.splitlines()[1] == "[mariadbd]"
    assert "long_query_time = 0.5\n" in text
    assert "slow_query_log = ON\n" in text
    assert "skip_name_resolve = ON\n" in text
    assert "innodb_buffer_pool_size = 522M\n" in text
    assert "performance_schema = OFF\n" in text
    assert "tmp_table_size = 512K\n" in text
    assert "port = 21001\n" in text
    assert "!include" not in text


def test_redo_log_is_kept_to_an_eighth_of_the_volume() -> None:
    assert server_settings(spec(ram_mb=65536, volume_gb=1), PATHS)["innodb_log_file_size"] == (
        "128M"
    )
    assert server_settings(spec(ram_mb=65536, volume_gb=100), PATHS)["innodb_log_file_size"] == (
        "2048M"
    )


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (True, "ON"),
        (False, "OFF"),
        (42, "42"),
        (0.5, "0.5"),
        ("140M", "140M"),
        ("STRICT_ALL_TABLES,NO_ZERO_DATE", "STRICT_ALL_TABLES,NO_ZERO_DATE"),
        ("", '""'),
    ],
)
def test_values_are_rendered_as_option_file_words(value: object, rendered: str) -> None:
    assert render_value(value) == rendered  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["a b", "x\ny", "it's", 'q"', "a#comment", "back\\slash"])
def test_unsafe_option_values_are_refused(value: str) -> None:
    with pytest.raises(BadRequest, match="may hold only"):
        render_value(value)


def test_overlong_socket_path_is_refused_naming_it() -> None:
    paths = InstancePaths(root=Path("/srv/" + "x" * 100), os_user="cf-1")
    with pytest.raises(EngineError, match="x" * 100):
        server_settings(spec(), paths)


def test_odd_instance_paths_are_refused() -> None:
    with pytest.raises(EngineError, match="must be absolute"):
        server_settings(spec(), InstancePaths(root=Path("/srv/has space"), os_user="cf-1"))


def test_bind_host_must_be_an_address() -> None:
    assert server_settings(spec(bind_host="::1"), PATHS)["bind_address"] == "::1"
    with pytest.raises(BadRequest, match="bind host"):
        server_settings(spec(bind_host="1.2.3.4'; x"), PATHS)


def test_server_id_is_stable_distinct_and_in_range() -> None:
    ids = {server_id(f"instance-{n}") for n in range(2000)}
    assert len(ids) == 2000
    assert all(1 <= value <= 4294967295 for value in ids)
    assert server_id("a") == server_id("a")


def test_identifiers_are_quoted_and_grant_wildcards_escaped() -> None:
    assert quote_identifier("we`ird") == "`we``ird`"
    assert grant_pattern("my_db") == "my\\_db"
    assert unescape_grant_pattern("my\\_db") == "my_db"
    assert unescape_grant_pattern("my_db") is None  # a real wildcard
    assert unescape_grant_pattern("shop%") is None
    sql, params = grant_database("my_db", "app", "%")
    assert sql == "GRANT ALL PRIVILEGES ON `my\\_db`.* TO %s@%s"
    assert params == ("app", "%")


def test_create_database_statement() -> None:
    assert create_database(DatabaseSpec(name="shop")) == "CREATE DATABASE `shop`"
    assert (
        create_database(DatabaseSpec(name="d", character_set="latin1", collate="latin1_bin"))
        == "CREATE DATABASE `d` CHARACTER SET `latin1` COLLATE `latin1_bin`"
    )


def test_passwords_travel_as_mysql_native_hashes() -> None:
    # the value MariaDB's PASSWORD('SuperSecretPW1') returns
    assert password_hash("SuperSecretPW1") == "*5C9CE82F1B7591193717639B1C3A67C2B77A830D"


def test_root_never_gets_privileges_that_bypass_read_only_or_reach_the_host() -> None:
    withheld = {
        "SUPER",
        "READ_ONLY ADMIN",
        "BINLOG ADMIN",
        "BINLOG REPLAY",
        "REPLICATION SLAVE",
        "REPLICATION MASTER ADMIN",
        "REPLICATION SLAVE ADMIN",
        "FILE",
        "SHUTDOWN",
        "SET USER",
        "CONNECTION ADMIN",
        "ALL",
        "ALL PRIVILEGES",
    }
    assert not withheld & set(ROOT_PRIVILEGES)


def test_set_global_binds_the_value() -> None:
    assert set_global("slow_query_log", True) == ("SET GLOBAL slow_query_log = %s", (1,))
    assert set_global("sql_mode", "ANSI") == ("SET GLOBAL sql_mode = %s", ("ANSI",))
    with pytest.raises(ValueError):
        set_global("x = 1; SHUTDOWN; --", 1)
