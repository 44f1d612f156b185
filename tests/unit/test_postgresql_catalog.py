"""PostgreSQL catalog rules and configuration rendering (pure code, no engine)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from coffer.contracts.engine import DatabaseSpec, InstanceSpec, UserSpec
from coffer.engines import catalog as engine_catalog
from coffer.engines.postgresql.catalog import CATALOG
from coffer.engines.postgresql.config import (
    INCLUDE_LINE,
    render_hba,
    render_settings,
    render_value,
    server_settings,
    with_include,
)
from coffer.engines.postgresql.statements import create_database
from coffer.errors import BadRequest, EngineError

GOOD_NAMES = ["shop", "Shop_2", "_x", "my-app", "a" * 63]
BAD_NAMES = [
    "",
    "a" * 64,
    "1abc",
    "-abc",
    'sh"op',
    "sh'op",
    "shop;drop table x",
    "shop; DROP DATABASE postgres; --",
    "my app",
    "tab\tname",
    "new\nline",
    "café",
    "dollar$",
    "pg_shop",
    "PG_Shop",
]


def spec(**overrides: object) -> InstanceSpec:
    values: dict[str, object] = {
        "instance_id": "inst-1",
        "engine": "postgresql",
        "version": "15",
        "port": 20001,
        "ram_mb": 1024,
        "vcpus": 1,
        "volume_gb": 1,
    }
    values.update(overrides)
    return InstanceSpec.model_validate(values)


def test_registry_exposes_the_catalog_without_importing_psycopg() -> None:
    code = (
        "import sys, coffer.engines as e; c = e.catalog('postgresql');"
        "assert c.name == 'postgresql' and c.default_version in c.versions;"
        "assert 'psycopg' not in sys.modules, 'catalog imported psycopg'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert engine_catalog("postgresql") is CATALOG


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


@pytest.mark.parametrize("name", ["postgres", "template0", "template1", "Postgres"])
def test_system_databases_are_reserved(name: str) -> None:
    with pytest.raises(BadRequest, match="reserved"):
        CATALOG.validate_database(DatabaseSpec(name=name))


@pytest.mark.parametrize("name", ["postgres", "root", "ROOT", "public", "coffer_admin"])
def test_internal_users_are_reserved(name: str) -> None:
    with pytest.raises(BadRequest, match="reserved"):
        CATALOG.validate_user(UserSpec(name=name, password="pw"))


def test_user_needs_a_password_and_any_host() -> None:
    with pytest.raises(BadRequest, match="password"):
        CATALOG.validate_user(UserSpec(name="app"))
    with pytest.raises(BadRequest, match="password"):
        CATALOG.validate_user(UserSpec(name="app", password=""))
    with pytest.raises(BadRequest, match="not tied to a host"):
        CATALOG.validate_user(UserSpec(name="app", host="10.0.0.1", password="pw"))


def test_user_databases_are_checked() -> None:
    with pytest.raises(BadRequest, match="'bad;db'"):
        CATALOG.validate_user(UserSpec(name="app", password="pw", databases=("bad;db",)))


@pytest.mark.parametrize("charset", ["UTF8", "utf-8", "LATIN1", "SQL_ASCII", "WIN1252"])
def test_known_character_sets_are_accepted(charset: str) -> None:
    CATALOG.validate_database(DatabaseSpec(name="d", character_set=charset))


@pytest.mark.parametrize("charset", ["", "BIG5", "utf8'; --", "KLINGON"])
def test_unknown_character_sets_are_refused(charset: str) -> None:
    with pytest.raises(BadRequest, match="character set"):
        CATALOG.validate_database(DatabaseSpec(name="d", character_set=charset))


@pytest.mark.parametrize("collate", ["C", "POSIX", "C.UTF-8", "en_US.UTF-8", "de_DE@euro"])
def test_locale_names_are_accepted(collate: str) -> None:
    CATALOG.validate_database(DatabaseSpec(name="d", collate=collate))


@pytest.mark.parametrize("collate", ["", "en US", "C'; --", "x" * 80, "../etc"])
def test_odd_locale_names_are_refused(collate: str) -> None:
    with pytest.raises(BadRequest, match="collation"):
        CATALOG.validate_database(DatabaseSpec(name="d", collate=collate))


def _megabytes(value: str) -> float:
    units = {"kB": 1 / 1024, "MB": 1, "GB": 1024}
    for unit, factor in units.items():
        if value.endswith(unit):
            return int(value[: -len(unit)]) * factor
    return int(value)


def test_memory_settings_grow_with_ram() -> None:
    sizes = [64, 256, 512, 1023, 1024, 1025, 2047, 2048, 4096, 8192, 16384, 65536, 262144]
    previous: dict[str, float] = {}
    for ram_mb in sizes:
        current = {k: _megabytes(v) for k, v in CATALOG.memory_settings(ram_mb).items()}
        for key, value in previous.items():
            assert current[key] >= value, (key, ram_mb)
        previous = current


def test_memory_settings_follow_the_rules_of_thumb() -> None:
    small = CATALOG.memory_settings(1024)
    assert small["shared_buffers"] == "256MB"
    assert small["effective_cache_size"] == "768MB"
    assert small["max_connections"] == "100"
    assert CATALOG.memory_settings(512)["max_connections"] == "100"
    assert CATALOG.memory_settings(1 << 20)["max_connections"] == "500"
    with pytest.raises(BadRequest):
        CATALOG.memory_settings(0)


def test_hba_trusts_the_socket_refuses_remote_superuser_and_uses_scram() -> None:
    rows = [line.split() for line in render_hba().splitlines() if not line.startswith("#")]
    assert rows[0] == ["local", "all", "all", "trust"]
    superuser_rows = [row for row in rows if row[2] == "postgres"]
    assert {row[3] for row in superuser_rows} == {"0.0.0.0/0", "::/0"}
    assert all(row[-1] == "reject" for row in superuser_rows)
    # the refusals come before any line that could let the superuser in
    first_open = next(i for i, row in enumerate(rows) if row[0] == "host" and row[2] == "all")
    assert all(rows.index(row) < first_open for row in superuser_rows)
    host_rows = [row for row in rows if row[0] == "host" and row[2] == "all"]
    assert {row[3] for row in host_rows} == {"127.0.0.1/32", "::1/128", "0.0.0.0/0", "::/0"}
    assert all(row[-1] == "scram-sha-256" for row in host_rows)
    assert "trust" not in [row[-1] for row in rows if row[0] == "host"]


def test_hba_allowed_cidrs() -> None:
    rows = [line.split() for line in render_hba(allowed_cidrs=["10.1.2.0/24"]).splitlines()]
    open_to = {row[3] for row in rows if row[0] == "host" and row[-1] == "scram-sha-256"}
    assert open_to == {"127.0.0.1/32", "::1/128", "10.1.2.0/24"}
    with pytest.raises(BadRequest, match=re.escape("10.1.2.0/24 trust")):
        render_hba(allowed_cidrs=["10.1.2.0/24 trust"])


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (True, "on"),
        (False, "off"),
        (42, "42"),
        (0.5, "0.5"),
        ("64MB", "'64MB'"),
        ("it's", "'it''s'"),
        ("back\\slash", "'back\\\\slash'"),
    ],
)
def test_values_are_rendered_as_configuration_literals(value: object, rendered: str) -> None:
    assert render_value(value) == rendered  # type: ignore[arg-type]


def test_settings_put_managed_values_last_and_render_parameters() -> None:
    params = {"work_mem": "8MB", "jit": False, "random_page_cost": 1.1, "x.note": "a'b"}
    settings = server_settings(spec(parameters=params), socket_dir=Path("/srv/i/run"))
    assert settings["port"] == 20001
    assert settings["unix_socket_directories"] == "/srv/i/run"
    assert settings["listen_addresses"] == "127.0.0.1"
    assert settings["password_encryption"] == "scram-sha-256"
    assert settings["fsync"] is True
    assert settings["work_mem"] == "8MB"
    assert settings["shared_buffers"] == "256MB"
    text = render_settings(settings)
    assert "jit = off\n" in text
    assert "random_page_cost = 1.1\n" in text
    assert "x.note = 'a''b'\n" in text
    assert "port = 20001\n" in text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"port": 1}, "managed by Coffer"),
        ({"unix_socket_directories": "/tmp"}, "managed by Coffer"),
        ({"archive_command": "rm -rf /"}, "runs commands"),
        ({"shared_preload_libraries": "evil"}, "runs commands"),
        ({"work_mem\n": "1"}, "not a valid"),
        ({"Work Mem": "1"}, "not a valid"),
        ({"work_mem": "1MB\nport = 5432"}, "control characters"),
        ({"work_mem": None}, "boolean, a number or a string"),
        ({"work_mem": float("nan")}, "finite"),
    ],
)
def test_refused_parameters(params: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        server_settings(spec(parameters=params), socket_dir=Path("/srv/i/run"))


def test_overlong_socket_path_is_refused_naming_it() -> None:
    long_dir = Path("/srv/" + "x" * 100 + "/run")
    with pytest.raises(EngineError, match="x" * 100):
        server_settings(spec(), socket_dir=long_dir)


def test_bind_host_must_be_an_address() -> None:
    assert server_settings(spec(bind_host="::1"), socket_dir=Path("/r"))["listen_addresses"]
    with pytest.raises(BadRequest, match="bind host"):
        server_settings(spec(bind_host="1.2.3.4'; x"), socket_dir=Path("/r"))


def test_include_is_added_once() -> None:
    once = with_include("max_connections = 100\n")
    assert once.endswith(INCLUDE_LINE + "\n")
    assert with_include(once) == once
    assert with_include("a = 1").count(INCLUDE_LINE) == 1


def test_create_database_statement_quotes_and_picks_a_locale() -> None:
    plain = create_database(DatabaseSpec(name='we"ird')).as_string(None)
    assert plain == 'CREATE DATABASE "we""ird"'
    latin = create_database(DatabaseSpec(name="d", character_set="LATIN1")).as_string(None)
    assert latin == "CREATE DATABASE \"d\" WITH TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'"
    utf = create_database(DatabaseSpec(name="d", character_set="UTF8")).as_string(None)
    assert "LOCALE" not in utf
    collated = create_database(DatabaseSpec(name="d", collate="C")).as_string(None)
    assert collated.endswith("TEMPLATE template0 LOCALE 'C'")
