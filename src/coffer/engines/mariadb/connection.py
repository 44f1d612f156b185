"""The agent's private channel into MariaDB, and the mapping of its errors.

The agent (OS root) connects as ``root@localhost`` over the unix socket in the
instance's run directory; ``unix_socket`` authentication matches the OS account, so no
password exists anywhere, and the directory is 0700 for the instance's own account.
Each session turns off the general log and the slow log for itself and uses a fixed
``sql_mode``, so a configuration group can neither log the agent's statements nor change
how they parse.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql  # type: ignore[import-untyped,unused-ignore]

from coffer.engines.base import InstancePaths
from coffer.engines.mariadb.catalog import INTERNAL_ADMIN
from coffer.engines.mariadb.config import socket_path
from coffer.errors import BadRequest, CofferError, EngineError, NotFound

__all__ = ["Row", "Session", "connect", "describe", "error_code", "translate_errors"]

Row = tuple[Any, ...]

_SESSION_SETUP = (
    "SET SESSION sql_log_off = 1, SESSION long_query_time = 31536000,"
    " SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION',"
    " SESSION lock_wait_timeout = 30"
)
# Server error numbers (``include/mysqld_ername.h``).
_BAD_REQUEST_CODES = frozenset(
    {
        1007,  # ER_DB_CREATE_EXISTS
        1102,  # ER_WRONG_DB_NAME
        1115,  # ER_UNKNOWN_CHARACTER_SET
        1253,  # ER_COLLATION_CHARSET_MISMATCH
        1273,  # ER_UNKNOWN_COLLATION
        1396,  # ER_CANNOT_USER (duplicate or missing account)
        1470,  # ER_WRONG_STRING_LENGTH (user or host too long)
        1205,  # ER_LOCK_WAIT_TIMEOUT (object in use)
    }
)
_NOT_FOUND_CODES = frozenset(
    {
        1008,  # ER_DB_DROP_EXISTS
        1049,  # ER_BAD_DB_ERROR
        1133,  # ER_PASSWORD_NO_MATCH (no such account)
        1141,  # ER_NONEXISTING_GRANT
    }
)
_CLIENT_ERRORS_FROM = 2000  # CR_* codes: the server could not be reached or went away
_NEAR = re.compile(r"\s+near\s+'.*", re.DOTALL)


class Session:
    """One autocommit session; ``execute`` returns every row of the result."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, params: tuple[object, ...] | None = None) -> list[Row]:
        with self._connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows: list[Row] = list(cursor.fetchall())
        return rows

    def execute_named(self, sql: str) -> list[dict[str, Any]]:
        """Every row of the result as ``{column: value}`` (for ``SHOW`` statements whose
        columns are known by name)."""
        with self._connection.cursor() as cursor:
            cursor.execute(sql)
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self._connection.close()


@contextmanager
def connect(
    paths: InstancePaths, *, timeout_s: int = 5, read_timeout_s: int | None = None
) -> Iterator[Session]:
    """An autocommit ``root@localhost`` session over the instance's unix socket, closed on
    exit. Raises PyMySQL errors; use inside ``translate_errors`` to get Coffer errors."""
    connection = pymysql.connect(
        unix_socket=str(socket_path(paths)),
        user=INTERNAL_ADMIN,
        autocommit=True,
        charset="utf8mb4",
        connect_timeout=timeout_s,
        read_timeout=read_timeout_s,
        write_timeout=read_timeout_s,
        init_command=_SESSION_SETUP,
        program_name="coffer-agent",
    )
    session = Session(connection)
    try:
        yield session
    finally:
        session.close()


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Re-raise PyMySQL errors as Coffer errors whose message starts with ``action``.

    Only the server's message is kept, cut before any ``near '...'`` quotation of the
    statement, so statement text cannot leak into messages.
    """
    try:
        yield
    except CofferError:
        raise
    except pymysql.Error as exc:
        code = error_code(exc)
        if code in _BAD_REQUEST_CODES:
            raise BadRequest(f"{action}: {describe(exc)}") from None
        if code in _NOT_FOUND_CODES:
            raise NotFound(f"{action}: {describe(exc)}") from None
        if code is None or code >= _CLIENT_ERRORS_FROM:
            raise EngineError(f"{action}: MariaDB is not reachable: {describe(exc)}") from None
        raise EngineError(f"{action}: {describe(exc)}") from None


def error_code(exc: BaseException) -> int | None:
    """The MariaDB error number of a PyMySQL error, if it carries one."""
    args: tuple[object, ...] = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def describe(exc: BaseException) -> str:
    """A one-line, statement-free description of ``exc``."""
    args: tuple[object, ...] = getattr(exc, "args", ())
    text = str(args[1]) if len(args) >= 2 else str(exc)
    text = _NEAR.sub("", text).strip()
    lines = text.splitlines()
    return lines[0] if lines else type(exc).__name__
