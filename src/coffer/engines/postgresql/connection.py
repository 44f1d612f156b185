"""The agent's private channel into PostgreSQL, and the mapping of its errors.

The agent connects as the internal superuser over the unix socket in the instance's run
directory (``trust``; the directory is 0700 and owned by the engine user), never over
TCP. Each session turns off statement logging so that password verifiers sent in
``CREATE ROLE`` never reach the server log, even if a configuration group enables
``log_statement``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths
from coffer.engines.postgresql.catalog import INTERNAL_SUPERUSER
from coffer.errors import BadRequest, CofferError, EngineError, NotFound

__all__ = ["Connection", "connect", "describe", "translate_errors"]

Connection = psycopg.Connection[tuple[Any, ...]]

_QUIET_SESSION = " ".join(
    f"-c {setting}"
    for setting in (
        "log_statement=none",
        "log_min_error_statement=panic",
        "log_min_duration_statement=-1",
        "log_min_duration_sample=-1",
    )
)
_BAD_REQUEST: tuple[type[psycopg.Error], ...] = (
    pg_errors.DuplicateDatabase,
    pg_errors.DuplicateObject,
    pg_errors.InvalidParameterValue,
    pg_errors.DependentObjectsStillExist,
    pg_errors.ObjectInUse,
    pg_errors.InvalidName,
    pg_errors.WrongObjectType,  # e.g. CREATE DATABASE with a locale the host lacks
)
_NOT_FOUND: tuple[type[psycopg.Error], ...] = (
    pg_errors.UndefinedObject,
    pg_errors.InvalidCatalogName,
)


def connect(
    paths: InstancePaths,
    spec: InstanceSpec,
    *,
    dbname: str = "postgres",
    timeout_s: int = 5,
    statement_timeout_ms: int = 0,
) -> Connection:
    """An autocommit superuser session on ``dbname`` over the instance's unix socket.

    Raises ``psycopg.OperationalError`` if the server cannot be reached; use inside
    ``translate_errors`` to get Coffer errors.
    """
    options = f"{_QUIET_SESSION} -c statement_timeout={statement_timeout_ms}"
    return psycopg.connect(
        host=str(paths.run_dir),
        port=spec.port,
        user=INTERNAL_SUPERUSER,
        dbname=dbname,
        connect_timeout=timeout_s,
        application_name="coffer-agent",
        options=options,
        autocommit=True,
    )


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Re-raise psycopg errors as Coffer errors whose message starts with ``action``.

    Only the server's primary message (and detail for dependency errors) is kept: never
    the statement, so literals such as password verifiers cannot leak into messages.
    """
    try:
        yield
    except CofferError:
        raise
    except psycopg.OperationalError as exc:
        if isinstance(exc, pg_errors.ObjectInUse):
            raise BadRequest(f"{action}: {describe(exc)}") from None
        raise EngineError(f"{action}: PostgreSQL is not reachable: {describe(exc)}") from None
    except _BAD_REQUEST as exc:
        raise BadRequest(f"{action}: {describe(exc)}") from None
    except _NOT_FOUND as exc:
        raise NotFound(f"{action}: {describe(exc)}") from None
    except psycopg.Error as exc:
        raise EngineError(f"{action}: {describe(exc)}") from None


def describe(exc: BaseException) -> str:
    """A one-line, statement-free description of ``exc``."""
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        detail = exc.diag.message_detail
        primary = exc.diag.message_primary
        return f"{primary} ({detail})" if detail else primary
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
