"""Realistic data for the backup benchmark: generated rows, loaded and changed through each
engine's own client, and the engine's own count of the bytes a change wrote.

The data set is a small shop, about ``size`` bytes of payload in three tables, each with a
primary key and secondary indexes built after the load (as a bulk load would):

* ``customers`` (≈ 10 %): short names, e-mails (unique index) and cities (index);
* ``orders`` (≈ 40 %): a note of 200-700 bytes of word-like text each (compressible, about
  as much as prose), a customer (index) and a timestamp (index);
* ``attachments`` (≈ 50 %): 1.5-6 KB of random bytes each (incompressible) and their
  SHA-256, an order (index).

The text is cut at random offsets from a 32 MiB pool of Zipf-distributed pseudo-words,
larger than zstd's window, so it compresses like text rather than like a repeated block.
Everything is seeded: the same ``size`` gives the same rows.

``change`` rewrites the notes (and status) of random orders and appends attachments,
``fraction`` of ``size`` in total, half each. ``log_position`` is the engine's write-ahead
log position in bytes (PostgreSQL ``pg_current_wal_lsn()``, MariaDB
``Innodb_lsn_current``): the difference around a change is what the engine itself wrote.

The sessions log in as the instance's root (from the root API): PostgreSQL's
``CHECKPOINT`` needs a superuser and MariaDB's ``FLUSH TABLES`` needs RELOAD.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import string
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

import psycopg
import pymysql  # type: ignore[import-untyped,unused-ignore]

from bench.coffer_run import DATABASE

__all__ = ["ENGINES", "EngineData", "Login", "Workload"]

_POOL_BYTES = 32 << 20
_VOCABULARY = 6000
_STATUSES = ("new", "paid", "packed", "shipped", "delivered", "returned")
_EPOCH = datetime(2023, 1, 1)
_YEAR_S = 365 * 24 * 3600
#: mean payload of one row, used to turn byte budgets into row counts
_CUSTOMER_BYTES = 76
_ORDER_BYTES = 490
_ATTACHMENT_BYTES = 3890
_BATCH_ROWS = 2000

Customer = tuple[int, str, str, str, datetime]
Order = tuple[int, int, str, int, datetime, str]
Attachment = tuple[int, int, bytes, bytes]


@dataclass(frozen=True)
class Login:
    """Where and as whom a benchmark session logs in (the instance's root)."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)


@dataclass
class Workload:
    """About ``size`` bytes of shop data; see the module docstring."""

    size: int
    seed: int = 7

    @cached_property
    def _pool(self) -> str:
        rng = random.Random(self.seed)
        letters = string.ascii_lowercase
        vocab = ["".join(rng.choices(letters, k=rng.randint(2, 11))) for _ in range(_VOCABULARY)]
        cum = list(itertools.accumulate(1 / (rank + 1) for rank in range(_VOCABULARY)))
        words = rng.choices(vocab, cum_weights=cum, k=_POOL_BYTES // 6)
        return " ".join(words)[:_POOL_BYTES]

    def text(self, rng: random.Random, low: int, high: int) -> str:
        """A slice of the text pool, ``low``-``high`` characters long."""
        length = rng.randint(low, high)
        start = rng.randrange(len(self._pool) - length)
        return self._pool[start : start + length]

    @property
    def customer_count(self) -> int:
        return max(1, int(self.size * 0.10 / _CUSTOMER_BYTES))

    @property
    def order_count(self) -> int:
        return max(1, int(self.size * 0.40 / _ORDER_BYTES))

    @property
    def attachment_count(self) -> int:
        return max(1, int(self.size * 0.50 / _ATTACHMENT_BYTES))

    def customers(self) -> Iterator[Customer]:
        rng = random.Random(self.seed + 1)
        for cid in range(1, self.customer_count + 1):
            name = self.text(rng, 8, 24)
            city = self.text(rng, 4, 16)
            yield (cid, name, f"{name[:20].strip()}.{cid}@example.com", city, _moment(rng))

    def orders(self, first: int, count: int, rng: random.Random) -> Iterator[Order]:
        for oid in range(first, first + count):
            customer = rng.randint(1, self.customer_count)
            status = rng.choice(_STATUSES)
            note = self.text(rng, 200, 700)
            yield (oid, customer, status, rng.randrange(100, 500_000), _moment(rng), note)

    def attachments(self, first: int, count: int, rng: random.Random) -> Iterator[Attachment]:
        for aid in range(first, first + count):
            body = rng.randbytes(rng.randint(1536, 6144))
            yield (aid, rng.randint(1, self.order_count), hashlib.sha256(body).digest(), body)

    def note_updates(self, fraction: float, rng: random.Random) -> list[tuple[str, str, int]]:
        """(status, note, order id) for random existing orders: ``fraction`` of ``size``."""
        count = max(1, int(self.size * fraction / _ORDER_BYTES))
        ids = rng.sample(range(1, self.order_count + 1), min(count, self.order_count))
        return [(rng.choice(_STATUSES), self.text(rng, 200, 700), oid) for oid in sorted(ids)]

    def extra_attachment_count(self, fraction: float) -> int:
        return max(1, int(self.size * fraction / _ATTACHMENT_BYTES))


def _moment(rng: random.Random) -> datetime:
    return _EPOCH + timedelta(seconds=rng.randrange(_YEAR_S))


def payload_bytes(row: Sequence[Any]) -> int:
    """Bytes of a row's values: strings and bytes by length, other values as 8."""
    return sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)


def batched(rows: Iterator[Any], size: int = _BATCH_ROWS) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(rows, size)):
        yield batch


class EngineData(Protocol):
    """Load, settle, change and measure one engine's copy of a ``Workload``."""

    log_name: str  # what ``log_position`` counts, as printed

    def load(self, login: Login, workload: Workload) -> int:
        """Create the tables, load every row, build the indexes; the payload bytes."""
        ...

    def settle(self, login: Login) -> None:
        """Make the loaded data durable in the data files (checkpoint / flush)."""
        ...

    def change(self, login: Login, workload: Workload, fraction: float, seed: int) -> int:
        """Rewrite and append ``fraction`` of the data; the payload bytes written."""
        ...

    def trickle(self, login: Login, until: float, every_s: float) -> int:
        """One small committed write every ``every_s`` until ``time.monotonic()`` passes
        ``until`` (a steady light load); how many."""
        ...

    def log_position(self, login: Login) -> int:
        """The engine's write-ahead log position, in bytes."""
        ...


# -- PostgreSQL ------------------------------------------------------------------------------

_PG_TABLES = (
    "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL,"
    " city text NOT NULL, created timestamp NOT NULL)",
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL,"
    " status text NOT NULL, amount_cents bigint NOT NULL, placed timestamp NOT NULL,"
    " note text NOT NULL)",
    "CREATE TABLE attachments (id bigint PRIMARY KEY, order_id bigint NOT NULL,"
    " digest bytea NOT NULL, body bytea NOT NULL)",
)
_PG_INDEXES = (
    "CREATE UNIQUE INDEX customers_email ON customers (email)",
    "CREATE INDEX customers_city ON customers (city)",
    "CREATE INDEX orders_customer ON orders (customer_id)",
    "CREATE INDEX orders_placed ON orders (placed)",
    "CREATE INDEX attachments_order ON attachments (order_id)",
)
_PG_COPY = {
    "customers": "COPY customers (id, name, email, city, created) FROM STDIN",
    "orders": "COPY orders (id, customer_id, status, amount_cents, placed, note) FROM STDIN",
    "attachments": "COPY attachments (id, order_id, digest, body) FROM STDIN",
}


@contextmanager
def _pg(login: Login) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(
        host=login.host,
        port=login.port,
        user=login.user,
        password=login.password,
        dbname=DATABASE,
        autocommit=True,
        connect_timeout=10,
    ) as conn:
        yield conn


def _pg_copy(conn: psycopg.Connection[Any], table: str, rows: Iterator[Sequence[Any]]) -> int:
    total = 0
    with conn.transaction(), conn.cursor() as cur, cur.copy(_PG_COPY[table]) as copy:
        for row in rows:
            copy.write_row(row)
            total += payload_bytes(row)
    return total


class PostgresData:
    log_name = "WAL bytes (pg_current_wal_lsn)"

    def load(self, login: Login, workload: Workload) -> int:
        rng = random.Random(workload.seed + 2)
        with _pg(login) as conn:
            for ddl in _PG_TABLES:
                conn.execute(ddl)
            total = _pg_copy(conn, "customers", workload.customers())
            total += _pg_copy(conn, "orders", workload.orders(1, workload.order_count, rng))
            rows = workload.attachments(1, workload.attachment_count, rng)
            total += _pg_copy(conn, "attachments", rows)
            for ddl in _PG_INDEXES:
                conn.execute(ddl)
        return total

    def settle(self, login: Login) -> None:
        with _pg(login) as conn:
            conn.execute("VACUUM (ANALYZE)")
            conn.execute("CHECKPOINT")

    def change(self, login: Login, workload: Workload, fraction: float, seed: int) -> int:
        rng = random.Random(seed)
        updates = workload.note_updates(fraction / 2, rng)
        total = sum(payload_bytes(u) for u in updates)
        with _pg(login) as conn:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany("UPDATE orders SET status = %s, note = %s WHERE id = %s", updates)
            first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM attachments").fetchone()
            assert first is not None
            count = workload.extra_attachment_count(fraction / 2)
            total += _pg_copy(conn, "attachments", workload.attachments(first[0], count, rng))
        return total

    def trickle(self, login: Login, until: float, every_s: float) -> int:
        with _pg(login) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS trickle (id bigserial, at timestamptz)")
            count = 0
            while time.monotonic() < until:
                conn.execute("INSERT INTO trickle (at) VALUES (now())")
                count += 1
                time.sleep(every_s)
        return count

    def log_position(self, login: Login) -> int:
        with _pg(login) as conn:
            row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()
        assert row is not None
        return int(row[0])


# -- MariaDB ---------------------------------------------------------------------------------

_MY_TABLES = (
    "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL,"
    " email VARCHAR(120) NOT NULL, city VARCHAR(40) NOT NULL, created DATETIME NOT NULL)"
    " ENGINE=InnoDB CHARACTER SET utf8mb4",
    "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL,"
    " status VARCHAR(16) NOT NULL, amount_cents BIGINT NOT NULL, placed DATETIME NOT NULL,"
    " note TEXT NOT NULL) ENGINE=InnoDB CHARACTER SET utf8mb4",
    "CREATE TABLE attachments (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL,"
    " digest BINARY(32) NOT NULL, body MEDIUMBLOB NOT NULL) ENGINE=InnoDB",
)
_MY_INDEXES = (
    "ALTER TABLE customers ADD UNIQUE INDEX customers_email (email),"
    " ADD INDEX customers_city (city)",
    "ALTER TABLE orders ADD INDEX orders_customer (customer_id), ADD INDEX orders_placed (placed)",
    "ALTER TABLE attachments ADD INDEX attachments_order (order_id)",
)
_MY_INSERT = {
    "customers": "INSERT INTO customers (id, name, email, city, created)"
    " VALUES (%s, %s, %s, %s, %s)",
    "orders": "INSERT INTO orders (id, customer_id, status, amount_cents, placed, note)"
    " VALUES (%s, %s, %s, %s, %s, %s)",
    "attachments": "INSERT INTO attachments (id, order_id, digest, body) VALUES (%s, %s, %s, %s)",
}


@contextmanager
def _my(login: Login) -> Iterator[Any]:
    conn = pymysql.connect(
        host=login.host,
        port=login.port,
        user=login.user,
        password=login.password,
        database=DATABASE,
        autocommit=False,
        connect_timeout=10,
        charset="utf8mb4",
    )
    try:
        yield conn
    finally:
        conn.close()


def _my_insert(conn: Any, table: str, rows: Iterator[Sequence[Any]]) -> int:
    """Multi-row INSERTs (PyMySQL packs ``executemany``), committed per batch."""
    total = 0
    with conn.cursor() as cur:
        for batch in batched(iter(rows)):
            cur.executemany(_MY_INSERT[table], batch)
            conn.commit()
            total += sum(payload_bytes(row) for row in batch)
    return total


class MariaDBData:
    log_name = "InnoDB redo bytes (Innodb_lsn_current)"

    def load(self, login: Login, workload: Workload) -> int:
        rng = random.Random(workload.seed + 2)
        with _my(login) as conn:
            with conn.cursor() as cur:
                for ddl in _MY_TABLES:
                    cur.execute(ddl)
            total = _my_insert(conn, "customers", workload.customers())
            total += _my_insert(conn, "orders", workload.orders(1, workload.order_count, rng))
            rows = workload.attachments(1, workload.attachment_count, rng)
            total += _my_insert(conn, "attachments", rows)
            with conn.cursor() as cur:
                for ddl in _MY_INDEXES:
                    cur.execute(ddl)
        return total

    def settle(self, login: Login) -> None:
        with _my(login) as conn, conn.cursor() as cur:
            cur.execute("ANALYZE TABLE customers, orders, attachments")
            cur.fetchall()
            cur.execute("FLUSH TABLES")

    def change(self, login: Login, workload: Workload, fraction: float, seed: int) -> int:
        rng = random.Random(seed)
        updates = workload.note_updates(fraction / 2, rng)
        total = sum(payload_bytes(u) for u in updates)
        with _my(login) as conn:
            with conn.cursor() as cur:
                for batch in batched(iter(updates)):
                    cur.executemany("UPDATE orders SET status = %s, note = %s WHERE id = %s", batch)
                    conn.commit()
                cur.execute("SELECT coalesce(max(id), 0) + 1 FROM attachments")
                first = int(cur.fetchone()[0])
            count = workload.extra_attachment_count(fraction / 2)
            total += _my_insert(conn, "attachments", workload.attachments(first, count, rng))
        return total

    def trickle(self, login: Login, until: float, every_s: float) -> int:
        with _my(login) as conn, conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS trickle"
                " (id bigint AUTO_INCREMENT PRIMARY KEY, at datetime(6))"
            )
            count = 0
            while time.monotonic() < until:
                cur.execute("INSERT INTO trickle (at) VALUES (now(6))")
                conn.commit()
                count += 1
                time.sleep(every_s)
        return count

    def log_position(self, login: Login) -> int:
        with _my(login) as conn, conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_lsn_current'")
            row = cur.fetchone()
        if row is None:
            raise RuntimeError("this MariaDB has no Innodb_lsn_current status variable")
        return int(row[1])


ENGINES: dict[str, EngineData] = {"postgresql": PostgresData(), "mariadb": MariaDBData()}
