"""The agent's private channel into Redis, and the mapping of its errors.

The agent authenticates as Coffer's admin ACL user over the unix socket in the
instance's run directory (0700, owned by the instance account), never over TCP. The
admin password is read from the root-only secret file at each connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from coffer.engines.base import InstancePaths
from coffer.engines.redis.catalog import ADMIN_USER
from coffer.engines.redis.config import admin_secret_path, socket_path
from coffer.errors import CofferError, EngineError

__all__ = [
    "Client",
    "connect",
    "describe",
    "info_fields",
    "parse_info",
    "raw_info_replies",
    "read_admin_password",
    "run",
    "translate_errors",
]

Client = redis.Redis
_CLIENT_NAME = "coffer-agent"
# Redis echoes a refused ACL SETUSER rule (which may be a password hash) in its error.
_ECHOED_RULE = re.compile(r"modifier '[^']*'")


def read_admin_password(paths: InstancePaths) -> str:
    """The admin password ``prepare`` generated; ``EngineError`` if it is missing."""
    try:
        password = admin_secret_path(paths).read_text(encoding="utf-8").strip()
    except OSError:
        password = ""
    if not password:
        raise EngineError(
            f"the admin password of the Redis instance in {str(paths.root)!r} is missing; "
            "prepare the instance again"
        )
    return password


def connect(paths: InstancePaths, *, timeout_s: float = 5.0) -> Client:
    """A client of the instance's unix socket, authenticated as the admin user.

    It connects lazily, on the first command, and never retries: failures surface as
    ``redis.RedisError`` (use inside ``translate_errors`` to get Coffer errors). Close it
    (``with connect(...) as client``) to drop its connection.
    """
    return redis.Redis(
        unix_socket_path=str(socket_path(paths)),
        username=ADMIN_USER,
        password=read_admin_password(paths),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        protocol=2,
        client_name=_CLIENT_NAME,
        driver_info=None,
    )


def run(client: Client, *args: str) -> Any:
    """Send one command (``run(client, "ACL", "SAVE")``) and return its decoded reply."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def raw_info_replies(client: Client) -> None:
    """Make ``INFO`` return its text on ``client`` (redis-py would turn values into
    numbers): ``info_fields`` and ``parse_info`` read it."""
    client.set_response_callback("INFO", lambda response, **options: response)


def info_fields(client: Client, *sections: str) -> dict[str, str]:
    """``INFO`` of ``sections`` as ``field -> value`` strings (``raw_info_replies``
    must have been called on ``client``)."""
    return parse_info(str(run(client, "INFO", *sections)))


def parse_info(text: str) -> dict[str, str]:
    """The ``field:value`` lines of an ``INFO`` reply (section headers skipped)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, value = line.split(":", 1)
            fields[name] = value.strip()
    return fields


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Re-raise redis-py errors as ``EngineError`` whose message starts with ``action``."""
    try:
        yield
    except CofferError:
        raise
    except redis.AuthenticationError as exc:
        raise EngineError(f"{action}: Redis refused Coffer's admin user: {describe(exc)}") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise EngineError(f"{action}: Redis is not reachable: {describe(exc)}") from None
    except redis.RedisError as exc:
        raise EngineError(f"{action}: {describe(exc)}") from None


def describe(exc: BaseException) -> str:
    """A one-line description of ``exc`` with any echoed ACL rule removed."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return _ECHOED_RULE.sub("modifier (hidden)", text)
