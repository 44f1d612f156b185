"""Redis configuration text, rendered by pure functions (no I/O).

Files of one instance (``paths`` is its ``InstancePaths``):

* ``root/redis.conf`` — the whole server configuration, owned by the instance account
  (0600), rewritten at each configure. It lies outside the data directory (so backups of
  the data carry no configuration) in a directory the instance account cannot write, so
  ``CONFIG REWRITE`` could not replace it even if someone were allowed to run it.
* ``root/coffer-admin.secret`` — the password of Coffer's admin ACL user; owned by the
  agent (root), mode 0600, never in the data directory, never logged.
* ``data/users.acl`` — the ACL users (``aclfile``), kept by Redis's ``ACL SAVE``.
* ``data/dump.rdb`` and ``data/appendonlydir/`` — RDB snapshots and the append-only file
  (Redis 7's multi-part AOF: ``appendonly.aof.manifest`` names a base file, an RDB, and
  the incremental files written after it). With ``appendonly yes`` Redis loads the AOF
  and ignores ``dump.rdb``; a restore therefore lays its snapshot down as the AOF base.
* ``run/redis.sock`` and ``run/redis.pid`` — the private unix socket (0700) and pid file.

Settings are rendered in one pass, with no directive twice: Coffer's managed settings,
then every tunable — Redis's default (``PARAMETER_DEFAULTS``), overridden by the flavor
(``memory_settings``), overridden by the configuration group (``spec.parameters``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths
from coffer.engines.redis.catalog import CATALOG, PARAMETER_DEFAULTS, PARAMETER_RULES
from coffer.errors import BadRequest, EngineError

__all__ = [
    "ACL_FILE",
    "ADMIN_SECRET_FILE",
    "AOF_DIR",
    "AOF_FILE",
    "CONFIG_FILE",
    "MAX_SOCKET_PATH_BYTES",
    "PID_FILE",
    "RDB_FILE",
    "SOCKET_FILE",
    "SettingValue",
    "acl_path",
    "admin_secret_path",
    "aof_dir",
    "aof_manifest_path",
    "config_path",
    "live_settings",
    "pid_path",
    "rdb_path",
    "redis_string",
    "render_config",
    "render_value",
    "server_settings",
    "socket_path",
]

CONFIG_FILE = "redis.conf"
ADMIN_SECRET_FILE = "coffer-admin.secret"
ACL_FILE = "users.acl"
#: ``dbfilename``: where ``BGSAVE`` and the save points write the RDB snapshot
RDB_FILE = "dump.rdb"
#: ``appenddirname`` (under the data directory) and ``appendfilename`` (its files' prefix)
AOF_DIR = "appendonlydir"
AOF_FILE = "appendonly.aof"
SOCKET_FILE = "redis.sock"
PID_FILE = "redis.pid"
#: ``sizeof(sockaddr_un.sun_path) - 1`` on Linux; Redis refuses longer socket paths.
MAX_SOCKET_PATH_BYTES = 107
#: RDB snapshot points (seconds, changes): Redis 7.0's defaults.
SAVE_POINTS = ("3600", "1", "300", "100", "60", "10000")

#: a single value, or several arguments of one directive (``bind``, ``save``).
SettingValue = bool | int | str | tuple[str, ...]

_HEADER = "# Written by Coffer at each configure; edits here are lost. Use configuration groups.\n"
_PATH_TEXT = re.compile(r"[A-Za-z0-9_./+-]+")
_HOST_TEXT = re.compile(r"[A-Za-z0-9.:-]+")
_BARE_VALUE = re.compile(r"[A-Za-z0-9_./:*+-]+")
_LIVE = frozenset({"maxmemory"} | {r.name for r in PARAMETER_RULES if not r.restart_required})


def config_path(paths: InstancePaths) -> Path:
    return paths.root / CONFIG_FILE


def admin_secret_path(paths: InstancePaths) -> Path:
    return paths.root / ADMIN_SECRET_FILE


def acl_path(paths: InstancePaths) -> Path:
    return paths.data_dir / ACL_FILE


def rdb_path(paths: InstancePaths) -> Path:
    return paths.data_dir / RDB_FILE


def aof_dir(paths: InstancePaths) -> Path:
    return paths.data_dir / AOF_DIR


def aof_manifest_path(paths: InstancePaths) -> Path:
    """The multi-part AOF manifest: one ``file <name> seq <n> type <b|h|i>`` line a file."""
    return aof_dir(paths) / f"{AOF_FILE}.manifest"


def socket_path(paths: InstancePaths) -> Path:
    return paths.run_dir / SOCKET_FILE


def pid_path(paths: InstancePaths) -> Path:
    return paths.run_dir / PID_FILE


def server_settings(spec: InstanceSpec, paths: InstancePaths) -> dict[str, SettingValue]:
    """Every directive of ``redis.conf``, managed ones first.

    Raises ``BadRequest`` for a refused parameter, port or address and ``EngineError`` for
    instance paths Redis cannot use.
    """
    tunables = tunable_settings(spec)
    managed = _managed_settings(spec, paths)
    return {**managed, **tunables}


def tunable_settings(spec: InstanceSpec) -> dict[str, SettingValue]:
    """Defaults, then the flavor's memory settings, then the configuration group's values."""
    CATALOG.validate_parameters(spec.parameters)
    settings: dict[str, SettingValue] = dict(PARAMETER_DEFAULTS)
    settings.update(CATALOG.memory_settings(spec.ram_mb))
    settings.update(spec.parameters)
    return settings


def live_settings(spec: InstanceSpec) -> dict[str, str]:
    """The settings ``CONFIG SET`` can change on a running server, as Redis strings:
    every tunable without ``restart_required`` (at its default if the group does not
    set it), ``maxmemory``, and the read-only switch of the volume guard."""
    live = {
        name: redis_string(value) for name, value in tunable_settings(spec).items() if name in _LIVE
    }
    live.update({name: redis_string(value) for name, value in _read_only_settings(spec).items()})
    return live


def _read_only_settings(spec: InstanceSpec) -> dict[str, SettingValue]:
    """Redis has no read-only mode for a master; asking for one replica to acknowledge
    every write, when it has none, makes it refuse writes (``NOREPLICAS``) and keep serving
    reads: the volume guard's read-only (``spec.read_only``)."""
    return {"min-replicas-to-write": 1 if spec.read_only else 0}


def _managed_settings(spec: InstanceSpec, paths: InstancePaths) -> dict[str, SettingValue]:
    if not 1 <= spec.port <= 65535:
        raise BadRequest(f"port {spec.port} is outside 1-65535")
    _check_paths(paths)
    return {
        **_read_only_settings(spec),
        "port": spec.port,
        "bind": _bind_addresses(spec.bind_host),
        "protected-mode": True,
        "unixsocket": str(socket_path(paths)),
        "unixsocketperm": "700",
        "pidfile": str(pid_path(paths)),
        "daemonize": False,
        "supervised": "no",
        "set-proc-title": False,  # keep argv intact: running_pid recognises its server by it
        "logfile": "",  # stdout, which the agent sends to paths.log_file
        "loglevel": "notice",
        "always-show-logo": False,
        "dir": str(paths.data_dir),
        "dbfilename": RDB_FILE,
        "save": SAVE_POINTS,
        "stop-writes-on-bgsave-error": True,
        "appendonly": True,
        "appenddirname": AOF_DIR,
        "appendfilename": AOF_FILE,
        "aclfile": str(acl_path(paths)),
        "sanitize-dump-payload": "clients",
        "enable-protected-configs": "no",
        "enable-debug-command": "no",
        "enable-module-command": "no",
        "repl-diskless-sync-delay": 0,
    }


def render_config(settings: Mapping[str, SettingValue]) -> str:
    """The text of ``redis.conf``: one ``name value`` line per setting, in order."""
    lines = [f"{name} {render_value(value)}" for name, value in settings.items()]
    return _HEADER + "\n".join(lines) + "\n"


def render_value(value: SettingValue) -> str:
    """A ``redis.conf`` argument: ``yes``/``no``, a number, a bare word, a double-quoted
    string, or several of these separated by spaces."""
    if isinstance(value, tuple):
        return " ".join(render_value(part) for part in value)
    if isinstance(value, bool | int):
        return redis_string(value)
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise BadRequest("configuration strings must not contain control characters")
    if _BARE_VALUE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def redis_string(value: SettingValue) -> str:
    """``value`` as Redis takes it in ``CONFIG SET`` (booleans are ``yes``/``no``)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return " ".join(value)
    return str(value)


def _check_paths(paths: InstancePaths) -> None:
    for path in (paths.data_dir, paths.run_dir):
        if not path.is_absolute() or not _PATH_TEXT.fullmatch(str(path)):
            raise EngineError(
                f"instance path {str(path)!r} must be an absolute path of letters, digits "
                "and '_./+-'"
            )
    socket = socket_path(paths)
    if len(str(socket).encode()) > MAX_SOCKET_PATH_BYTES:
        raise EngineError(
            f"unix socket path {str(socket)!r} is longer than {MAX_SOCKET_PATH_BYTES} bytes; "
            "use a shorter instance root"
        )


def _bind_addresses(bind_host: str) -> tuple[str, ...]:
    if bind_host == "*":
        return ("*", "-::*")  # every IPv4 address, and IPv6 ones where the host has IPv6
    try:
        return (str(ipaddress.ip_address(bind_host)),)
    except ValueError:
        pass
    if _HOST_TEXT.fullmatch(bind_host):
        return (bind_host,)
    raise BadRequest(f"bind host {bind_host!r} is not an IP address or host name")
