"""Instance logs, the pure parts and the agent's publishing over a real directory store:
which action a request asks for, the status a log shows, the settings a switched-on
log adds to each engine, and publish → show → rotate → discard on a real file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coffer import engines
from coffer.agent.guest_logs import run_log_op
from coffer.contracts.engine import InstanceSpec
from coffer.contracts.guest_logs import GuestLogAction
from coffer.domain.guest_logs import (
    LogAction,
    LogStatus,
    LogType,
    derive_status,
    find_log,
    instance_prefix,
    metafile_key,
    object_prefix,
    parse_action,
)
from coffer.engines.base import InstancePaths
from coffer.engines.mariadb.guestlogs import log_defaults, log_switches
from coffer.engines.postgresql.guestlogs import log_settings
from coffer.engines.redis.guestlogs import log_settings as redis_log_settings
from coffer.engines.redis.guestlogs import render_entry
from coffer.storage import StoreConfig

A = LogAction


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, (A.SHOW,)),
        ({"enable": 0, "disable": 0}, (A.SHOW,)),
        ({"enable": 1}, (A.ENABLE,)),
        ({"disable": 1, "publish": 0}, (A.DISABLE,)),
        ({"publish": 1}, (A.PUBLISH,)),
        ({"discard": 1}, (A.DISCARD,)),
        ({"publish": 1, "discard": 1}, (A.DISCARD, A.PUBLISH)),
    ],
)
def test_parse_action(flags: dict[str, int | None], expected: tuple[LogAction, ...]) -> None:
    assert parse_action(flags) == expected


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        ({"enable": 1, "disable": 1}, "enable and disable"),
        ({"enable": 1, "publish": 1}, "enable and publish"),
        ({"disable": 1, "discard": 1, "publish": 1}, "disable and publish and discard"),
        ({"enable": 2}, "enable must be 0 or 1"),
        ({"publish": -1}, "publish must be 0 or 1"),
        ({"discard": True}, "discard must be 0 or 1"),
    ],
)
def test_parse_action_refuses(flags: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_action(flags)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "slow_query", "enable": True},
        {"name": "slow_query", "enable": "1"},
        {"name": "slow_query", "enable": 1.0},
        {"name": "slow_query", "enable": 3},
        {"name": 5},
        {"name": ""},
        {"enable": 1},
        {"name": "slow_query", "rotate": 1},
    ],
)
def test_request_shape_is_strict(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GuestLogAction.model_validate(body)


def test_find_log_names_the_known_ones() -> None:
    defs = engines.catalog("mariadb").guest_logs
    assert find_log(defs, "general", "mariadb").type is LogType.USER
    with pytest.raises(KeyError, match="error, slow_query, general"):
        find_log(defs, "audit", "mariadb")


def test_every_engine_exposes_its_server_log() -> None:
    for name in engines.known_engines():
        defs = {d.name: d.type for d in engines.catalog(name).guest_logs}
        assert defs["error"] is LogType.SYS, name


def test_names_in_the_store() -> None:
    prefix = object_prefix("proj", "inst", "slow_query")
    assert prefix == "proj/inst/guest-logs/slow_query/"
    assert metafile_key(prefix) == "proj/inst/guest-logs/slow_query_metafile"
    assert metafile_key(prefix).startswith(instance_prefix("proj", "inst")), "one purge"


@pytest.mark.parametrize(
    ("kw", "status"),
    [
        ({"log_type": LogType.USER, "enabled": False, "size": 50, "published": 10}, "Disabled"),
        ({"log_type": LogType.USER, "enabled": True, "size": None, "published": 0}, "Enabled"),
        ({"log_type": LogType.SYS, "enabled": True, "size": 0, "published": 0}, "Unavailable"),
        ({"log_type": LogType.SYS, "enabled": True, "size": 9, "published": 0}, "Ready"),
        ({"log_type": LogType.USER, "enabled": True, "size": 9, "published": 4}, "Partial"),
        ({"log_type": LogType.USER, "enabled": True, "size": 9, "published": 9}, "Published"),
        ({"log_type": LogType.SYS, "enabled": True, "size": 0, "published": 9}, "Rotated"),
    ],
)
def test_derive_status(kw: dict[str, Any], status: str) -> None:
    assert derive_status(rotated=False, **kw) == LogStatus(status)


def spec(engine: str, logs: tuple[str, ...] = (), **parameters: Any) -> InstanceSpec:
    return InstanceSpec(
        instance_id="i1",
        engine=engine,
        version="15",
        port=15432,
        ram_mb=512,
        vcpus=1,
        volume_gb=1,
        parameters=parameters,
        logs=logs,
    )


def test_postgresql_slow_query_settings() -> None:
    assert log_settings(spec("postgresql")) == {}
    assert log_settings(spec("postgresql", ("slow_query",))) == {"log_min_duration_statement": 1000}
    chosen = spec("postgresql", ("slow_query",), log_min_duration_statement=250)
    assert log_settings(chosen) == {"log_min_duration_statement": 250}
    off = spec("postgresql", ("slow_query",), log_min_duration_statement=-1)
    assert log_settings(off) == {"log_min_duration_statement": 1000}, "enabled means on"


def test_mariadb_log_settings(tmp_path: Path) -> None:
    paths = InstancePaths(tmp_path, os_user="x")
    off = log_switches(spec("mariadb"), paths)
    assert off["general_log"] is False and "slow_query_log" not in off
    on = log_switches(spec("mariadb", ("general", "slow_query")), paths)
    assert on["general_log"] is True and on["slow_query_log"] is True
    assert on["general_log_file"] == str(tmp_path / "data" / "general.log")
    assert log_defaults(spec("mariadb", ("slow_query",))) == {"long_query_time": 1.0}
    assert log_defaults(spec("mariadb")) == {}


class Host:
    """A PostgreSQL instance's log file and a directory store, without the engine."""

    def __init__(self, tmp_path: Path) -> None:
        self.paths = InstancePaths(tmp_path / "inst", os_user="x")
        self.paths.root.mkdir()
        self.store_dir = tmp_path / "store"
        self.engine = engines.engine(
            "postgresql", engine_user="coffer", templates_dir=str(tmp_path / "t")
        )

    def op(self, op: str, name: str = "error", logs: tuple[str, ...] = ()) -> dict[str, Any]:
        payload = {
            "op": op,
            "store": StoreConfig(location=str(self.store_dir)).model_dump(),
            "prefixes": {name: object_prefix("p", "i1", name)},
        }
        (view,) = run_log_op(self.engine, self.paths, spec("postgresql", logs), payload)["logs"]
        assert isinstance(view, dict)
        return view

    def write(self, text: str) -> None:
        with open(self.paths.log_file, "a") as f:
            f.write(text)

    def published(self) -> str:
        parts = sorted((self.store_dir / "p/i1/guest-logs/error").iterdir())
        return "".join(p.read_text() for p in parts)


def test_publish_show_rotate_discard(tmp_path: Path) -> None:
    host = Host(tmp_path)
    assert host.op("show") | {"metafile": ""} == {
        "name": "error",
        "type": "SYS",
        "status": "Unavailable",
        "published": 0,
        "pending": 0,
        "container": "None",
        "prefix": "None",
        "metafile": "",
    }
    assert host.op("publish")["published"] == 0, "nothing to publish is no error"

    host.write("LOG:  first\nLOG:  second\npartial")
    assert host.op("show")["status"] == "Ready"
    shown = host.op("publish")
    assert shown["published"] == len("LOG:  first\nLOG:  second\n"), "whole lines only"
    assert shown["pending"] == len("partial") and shown["status"] == "Partial"
    assert shown["prefix"] == "p/i1/guest-logs/error/"
    assert shown["container"] == "coffer-backups"
    meta = json.loads((host.store_dir / shown["metafile"]).read_text())
    assert meta["log_size"] == shown["published"] and meta["log_name"] == "error"

    host.write(" line\n")
    shown = host.op("publish")
    assert shown["status"] == "Published" and shown["pending"] == 0
    assert host.published() == "LOG:  first\nLOG:  second\npartial line\n"
    assert len(list((host.store_dir / "p/i1/guest-logs/error").iterdir())) == 2

    # the engine starts its log again: the next publish starts over
    host.paths.log_file.write_text("LOG:  restarted\n")
    assert host.op("show")["status"] == "Rotated"
    shown = host.op("publish")
    assert host.published() == "LOG:  restarted\n"
    assert shown["published"] == len("LOG:  restarted\n")

    shown = host.op("discard")
    assert shown["published"] == 0 and shown["prefix"] == "None"
    assert not (host.store_dir / "p/i1/guest-logs").exists()


def test_a_disabled_user_log_shows_disabled(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.write("LOG:  duration: 1200 ms  statement: SELECT 1\n")
    assert host.op("show", "slow_query")["status"] == "Disabled"
    assert host.op("show", "slow_query", logs=("slow_query",))["status"] == "Ready"


def test_redis_slow_log_lines_and_settings() -> None:
    entry = {
        "id": 7,
        "start_time": 1764150000,
        "duration": 25000,
        "command": "EVAL 'return \"a\nb\"' 0",
        "client_address": "127.0.0.1:5000",
        "client_name": "",
    }
    line = render_entry(entry)
    assert line.startswith("2025-11-26T09:40:00Z id=7 duration_us=25000 client=127.0.0.1:5000")
    assert line.endswith("command: EVAL 'return \"a\\nb\"' 0\n") and line.count("\n") == 1
    redis_spec = spec("redis", ("slow_query",)).model_copy(update={"version": "7.0"})
    assert redis_log_settings(redis_spec) == {"slowlog-log-slower-than": 10000}
    assert redis_log_settings(spec("redis")) == {}
