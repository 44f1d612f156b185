"""Engines and backups driven through the REST API, for the backup tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pymysql
import redis

from tests.support.api import create_body, wait_instance
from tests.support.processes import CofferServer

PASSWORD = "app-secret-1"


# -- one adapter per engine: write rows, read everything back -------------------------------


@dataclass(frozen=True)
class Engine:
    datastore: dict[str, str]
    incremental: bool
    write: Callable[[dict[str, Any], list[tuple[int, str]]], None]
    contents: Callable[[dict[str, Any]], list[tuple[Any, ...]]]
    body: Callable[[str], dict[str, Any]]


def _sql_body(datastore: dict[str, str]) -> Callable[[str], dict[str, Any]]:
    return lambda name: create_body(name, datastore=datastore)


@contextmanager
def pg_session(inst: dict[str, Any]) -> Iterator[psycopg.Connection[Any]]:
    dsn = dict(host=inst["ip"][0], port=inst["port"], user="app", password=PASSWORD)
    with psycopg.connect(**dsn, dbname="shop", autocommit=True, connect_timeout=5) as conn:
        yield conn


def _pg_write(inst: dict[str, Any], rows: list[tuple[int, str]]) -> None:
    with pg_session(inst) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text, b bytea)")
        for i, name in rows:
            conn.execute("INSERT INTO items VALUES (%s, %s, %s)", (i, name, bytes([i % 256]) * i))


def _pg_contents(inst: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pg_session(inst) as conn:
        return conn.execute("SELECT id, name, b FROM items ORDER BY id").fetchall()


@contextmanager
def _my(inst: dict[str, Any]) -> Iterator[pymysql.Connection[Any]]:
    conn = pymysql.connect(
        host=inst["ip"][0],
        port=inst["port"],
        user="app",
        password=PASSWORD,
        database="shop",
        autocommit=True,
        connect_timeout=5,
        charset="utf8mb4",
    )
    try:
        yield conn
    finally:
        conn.close()


def _my_write(inst: dict[str, Any], rows: list[tuple[int, str]]) -> None:
    with _my(inst) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS items (id INT PRIMARY KEY, name TEXT, b BLOB) "
            "CHARACTER SET utf8mb4"
        )
        for i, name in rows:
            cur.execute("INSERT INTO items VALUES (%s, %s, %s)", (i, name, bytes([i % 256]) * i))


def _my_contents(inst: dict[str, Any]) -> list[tuple[Any, ...]]:
    with _my(inst) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name, b FROM items ORDER BY id")
        return list(cur.fetchall())


def _redis(inst: dict[str, Any]) -> redis.Redis:
    return redis.Redis(
        host=inst["ip"][0], port=inst["port"], username="app", password=PASSWORD, socket_timeout=5
    )


def _redis_write(inst: dict[str, Any], rows: list[tuple[int, str]]) -> None:
    with _redis(inst) as r:
        for i, name in rows:
            r.set(f"item:{i}", name.encode())
            r.hset(f"blob:{i}", mapping={"b": bytes([i % 256]) * i})


def _redis_contents(inst: dict[str, Any]) -> list[tuple[Any, ...]]:
    with _redis(inst) as r:
        keys = sorted(r.scan_iter(count=1000))
        return [(k, r.get(k) if k.startswith(b"item:") else r.hgetall(k)) for k in keys]


def _redis_body(name: str) -> dict[str, Any]:
    return create_body(
        name,
        datastore={"type": "redis", "version": "7.0"},
        databases=[],
        users=[{"name": "app", "password": PASSWORD}],
    )


ENGINES = {
    "postgresql": Engine(
        {"type": "postgresql", "version": "15"},
        True,
        _pg_write,
        _pg_contents,
        _sql_body({"type": "postgresql", "version": "15"}),
    ),
    "mariadb": Engine(
        {"type": "mariadb", "version": "10.11"},
        True,
        _my_write,
        _my_contents,
        _sql_body({"type": "mariadb", "version": "10.11"}),
    ),
    "redis": Engine(
        {"type": "redis", "version": "7.0"}, False, _redis_write, _redis_contents, _redis_body
    ),
}


def rows(start: int, count: int) -> list[tuple[int, str]]:
    return [(i, f"row {i} — ünïcødé ✓") for i in range(start, start + count)]


# -- API helpers ----------------------------------------------------------------------------


def wait_backup(c: httpx.Client, bid: str, timeout: float = 180) -> dict[str, Any]:
    end = time.monotonic() + timeout
    backup: dict[str, Any] = {}
    while time.monotonic() < end:
        r = c.get(f"/backups/{bid}")
        assert r.status_code == 200, r.text
        backup = r.json()["backup"]
        if backup["status"] in ("COMPLETED", "FAILED"):
            return backup
        time.sleep(0.2)
    raise AssertionError(f"backup {bid} not finished in {timeout}s: {backup}")


def wait_verified(c: httpx.Client, bid: str, timeout: float = 180) -> dict[str, Any]:
    """The backup once its verification (restore into a throwaway + checks) has ended."""
    end = time.monotonic() + timeout
    backup: dict[str, Any] = {}
    while time.monotonic() < end:
        backup = c.get(f"/backups/{bid}").json()["backup"]
        if backup["verification"]["status"] in ("VERIFIED", "FAILED"):
            return backup
        time.sleep(0.2)
    raise AssertionError(f"backup {bid} not verified in {timeout}s: {backup}")


def take_backup(c: httpx.Client, iid: str, name: str, **extra: Any) -> dict[str, Any]:
    r = c.post("/backups", json={"backup": {"name": name, "instance": iid, **extra}})
    assert r.status_code == 202, r.text
    created = r.json()["backup"]
    assert created["status"] == "NEW" and created["instance_id"] == iid
    done = wait_backup(c, created["id"])
    assert done["status"] == "COMPLETED", done
    return done


def restore(c: httpx.Client, engine: Engine, name: str, backup_id: str) -> dict[str, Any]:
    return restore_point(c, engine, name, {"backupRef": backup_id})


def restore_point(
    c: httpx.Client, engine: Engine, name: str, point: dict[str, Any]
) -> dict[str, Any]:
    """A new instance from ``restorePoint`` ``point``, waited for until ACTIVE."""
    body = engine.body(name)
    body["instance"]["restorePoint"] = point
    body["instance"].pop("databases", None)
    body["instance"].pop("users", None)
    r = c.post("/instances", json=body)
    assert r.status_code == 200, r.text
    return wait_instance(c, r.json()["instance"]["id"], timeout=180)


def store_dir(server: CofferServer) -> Path:
    return server.data_dir / "backups"


# -- point-in-time recovery ------------------------------------------------------------------


def now_utc() -> datetime:
    return datetime.now(UTC)


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def wait_restorable(c: httpx.Client, iid: str, moment: datetime, timeout: float = 60) -> datetime:
    """Wait until the instance's latest restorable time reaches ``moment``."""
    end = time.monotonic() + timeout
    shown: dict[str, Any] = {}
    while time.monotonic() < end:
        shown = c.get(f"/instances/{iid}").json()["instance"]
        latest = shown.get("latest_restorable_time")
        if latest and parse_time(latest) >= moment:
            return parse_time(latest)
        time.sleep(0.3)
    raise AssertionError(f"latest restorable time never reached {moment}: {shown}")


def restore_at(
    c: httpx.Client, engine: Engine, name: str, moment: datetime, **ref: str
) -> dict[str, Any]:
    """A new instance with the data of ``ref`` (backupRef or instanceRef) at ``moment``."""
    return restore_point(c, engine, name, {**ref, "restore_time": moment.isoformat()})
