"""Addresses and ready-to-paste connection strings, one small entry per datastore.

Nothing here ever includes a password: URLs carry the user only, and the shell commands
let the engine's own client ask for the password.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

__all__ = [
    "CONNECTION_FORMATS",
    "ConnectionFormat",
    "ConnectionTarget",
    "connection_format",
    "connection_target",
    "host_port",
]


@dataclass(frozen=True)
class ConnectionTarget:
    host: str
    port: int
    user: str | None = None
    database: str | None = None

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ConnectionFormat:
    """How one datastore's clients are pointed at an instance."""

    url_scheme: str
    shell_command: Callable[[ConnectionTarget], str]

    def url(self, target: ConnectionTarget) -> str:
        user = f"{quote(target.user, safe='')}@" if target.user else ""
        path = f"/{quote(target.database, safe='')}" if target.database else ""
        return f"{self.url_scheme}://{user}{target.netloc}{path}"


def _psql(target: ConnectionTarget) -> str:
    pairs = [("host", target.host), ("port", str(target.port))]
    if target.user:
        pairs.append(("user", target.user))
    if target.database:
        pairs.append(("dbname", target.database))
    conninfo = " ".join(f"{key}={_libpq_value(value)}" for key, value in pairs)
    if any(c in conninfo for c in '"$`\\!'):
        return f"psql {shlex.quote(conninfo)}"
    return f'psql "{conninfo}"'


def _libpq_value(value: str) -> str:
    if value and not any(c in value for c in " '\\"):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _mariadb(target: ConnectionTarget) -> str:
    argv = ["mariadb", "-h", target.host, "-P", str(target.port)]
    if target.user:
        argv += ["-u", target.user, "-p"]
    if target.database:
        argv.append(target.database)
    return shlex.join(argv)


def _redis_cli(target: ConnectionTarget) -> str:
    argv = ["redis-cli", "-h", target.host, "-p", str(target.port)]
    if target.user:
        argv += ["--user", target.user, "--askpass"]
    return shlex.join(argv)


#: datastore type -> how to connect; a new datastore adds one line here.
CONNECTION_FORMATS: dict[str, ConnectionFormat] = {
    "postgresql": ConnectionFormat("postgresql", _psql),
    "mariadb": ConnectionFormat("mysql", _mariadb),
    "mysql": ConnectionFormat("mysql", _mariadb),
    "redis": ConnectionFormat("redis", _redis_cli),
}


def _host(view: dict[str, Any]) -> str | None:
    ips = view.get("ip")
    if isinstance(ips, list) and ips:
        return str(ips[0])
    if view.get("hostname"):
        return str(view["hostname"])
    addresses = view.get("addresses")
    if isinstance(addresses, list) and addresses and isinstance(addresses[0], dict):
        address = addresses[0].get("address")
        return str(address) if address else None
    return None


def connection_target(
    view: dict[str, Any], *, user: str | None = None, database: str | None = None
) -> ConnectionTarget | None:
    """Where to connect to the instance of this view, or None before it has an address."""
    host, port = _host(view), view.get("port")
    if host is None or not isinstance(port, int):
        return None
    return ConnectionTarget(host, port, user, database)


def host_port(view: dict[str, Any]) -> str | None:
    target = connection_target(view)
    return None if target is None else target.netloc


def connection_format(view: dict[str, Any]) -> ConnectionFormat | None:
    datastore = view.get("datastore")
    kind = datastore.get("type") if isinstance(datastore, dict) else None
    return CONNECTION_FORMATS.get(str(kind)) if kind else None
