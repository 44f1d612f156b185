"""Redis configuration text, rendered by pure functions (no I/O).

Files of one instance (``paths`` is its ``InstancePaths``):

* ``root/redis.conf`` — the whole server configuration, owned by the instance account
  (0600), rewritten at each configure. It lies outside the data directory (so backups of
  the data carry no configuration) in a directory the instance account cannot write, so
  ``CONFIG REWRITE`` could not replace it even if someone were allowed to run it.
* ``root/coffer-replication.json`` — the replication marker: the upstream the instance
  follows (with its replication password), a primary's write fence, or nothing; owned by
  the agent (root), mode 0600. Written by ``follow``, ``fence`` and ``promote`` only;
  ``configure`` renders it into ``redis.conf`` (``replicaof``, ``masteruser``,
  ``masterauth``, or the fence's ``min-replicas-to-write``, which overrides the volume
  guard's), so a replica keeps following across restarts and configures. The password
  is thus in ``redis.conf`` too, which only the instance account reads.
* ``root/coffer-cluster.json`` — the cluster marker (``coffer.engines.redis.cluster``):
  the instance is a Redis Cluster node, with its node timeout, announced address and
  the password of the cluster's internal accounts (the same on every member); owned by
  the agent (root), mode 0600. ``configure`` renders it after ``server_settings`` and
  before the replication marker: ``cluster-enabled``, ``cluster-config-file`` (the
  node's identity and view, ``data/nodes.conf``), ``cluster-node-timeout``,
  ``cluster-port`` (the bus port, when the marker names one; Redis's default is the
  client port + 10000), ``cluster-announce-ip``, ``masteruser``/``masterauth`` (what a
  replica authenticates as to its master). The password is thus in ``redis.conf`` too.
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
import json
import re
from collections.abc import Mapping
from pathlib import Path

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths, Upstream
from coffer.engines.redis.catalog import (
    CATALOG,
    NAME_PATTERN,
    PARAMETER_DEFAULTS,
    PARAMETER_RULES,
    is_internal_user,
)
from coffer.engines.redis.guestlogs import log_settings
from coffer.errors import BadRequest, EngineError

__all__ = [
    "ACL_FILE",
    "ADMIN_SECRET_FILE",
    "AOF_DIR",
    "AOF_FILE",
    "CLUSTER_BUS_OFFSET",
    "CLUSTER_FILE",
    "CLUSTER_NODES_FILE",
    "CLUSTER_NODE_TIMEOUT_MS",
    "CONFIG_FILE",
    "MAX_SOCKET_PATH_BYTES",
    "NEVER_ENOUGH_REPLICAS",
    "PID_FILE",
    "RDB_FILE",
    "REPLICATION_FILE",
    "SOCKET_FILE",
    "SettingValue",
    "acl_path",
    "admin_secret_path",
    "aof_dir",
    "aof_manifest_path",
    "cluster_marker",
    "cluster_path",
    "cluster_settings",
    "config_path",
    "is_fenced",
    "live_settings",
    "pid_path",
    "rdb_path",
    "redis_string",
    "render_config",
    "render_value",
    "replication_marker",
    "replication_path",
    "replication_settings",
    "server_settings",
    "socket_path",
    "upstream_host",
]

CONFIG_FILE = "redis.conf"
ADMIN_SECRET_FILE = "coffer-admin.secret"
ACL_FILE = "users.acl"
REPLICATION_FILE = "coffer-replication.json"
CLUSTER_FILE = "coffer-cluster.json"
#: ``cluster-config-file`` (under the data directory), written by Redis itself
CLUSTER_NODES_FILE = "nodes.conf"
#: without an explicit bus port, the cluster bus listens on the client port plus this
#: (Redis's default ``cluster-port``)
CLUSTER_BUS_OFFSET = 10000
#: bounds of ``cluster-node-timeout`` Coffer accepts (milliseconds)
CLUSTER_NODE_TIMEOUT_MS = (500, 600_000)
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
#: ``min-replicas-to-write`` of the volume guard's read-only: more replicas than a server
#: can have connected (each is a client, and ``maxclients`` is at most 10000), so writes
#: are refused even while replicas are attached (``1`` would let them through).
NEVER_ENOUGH_REPLICAS = 10001
#: seconds between the upstream's pings of its replicas (Redis: 10), so a replica's
#: ``master_last_io_seconds_ago`` stays at most about this while the link is healthy.
REPLICA_PING_PERIOD_S = 1

#: a single value, or several arguments of one directive (``bind``, ``save``).
SettingValue = bool | int | str | tuple[str, ...]

_HEADER = "# Written by Coffer at each configure; edits here are lost. Use configuration groups.\n"
_FENCE_SETTING = "min-replicas-to-write"
_MARKER_VERSION = 1
_PATH_TEXT = re.compile(r"[A-Za-z0-9_./+-]+")
_HOST_TEXT = re.compile(r"[A-Za-z0-9.:-]+")
_BARE_VALUE = re.compile(r"[A-Za-z0-9_./:*+-]+")
_LIVE = frozenset({"maxmemory"} | {r.name for r in PARAMETER_RULES if not r.restart_required})


def config_path(paths: InstancePaths) -> Path:
    return paths.root / CONFIG_FILE


def replication_path(paths: InstancePaths) -> Path:
    return paths.root / REPLICATION_FILE


def cluster_path(paths: InstancePaths) -> Path:
    return paths.root / CLUSTER_FILE


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
    """Every directive of ``redis.conf`` but the replication marker's, managed ones first.

    Raises ``BadRequest`` for a refused parameter, port or address and ``EngineError`` for
    instance paths Redis cannot use.
    """
    tunables = tunable_settings(spec)
    managed = _managed_settings(spec, paths)
    return {**managed, **tunables}


def tunable_settings(spec: InstanceSpec) -> dict[str, SettingValue]:
    """Defaults, then the flavor's memory settings, then the configuration group's values,
    then what the switched-on logs impose (``guestlogs``)."""
    CATALOG.validate_parameters(spec.parameters)
    settings: dict[str, SettingValue] = dict(PARAMETER_DEFAULTS)
    settings.update(CATALOG.memory_settings(spec.ram_mb))
    settings.update(spec.parameters)
    settings.update(log_settings(spec))
    return settings


def live_settings(spec: InstanceSpec, *, fenced: bool = False) -> dict[str, str]:
    """The settings ``CONFIG SET`` can change on a running server, as Redis strings:
    every tunable without ``restart_required`` (at its default if the group does not
    set it), ``maxmemory``, and the read-only switch of the volume guard, held on while
    the instance is ``fenced`` (``is_fenced``)."""
    live = {
        name: redis_string(value) for name, value in tunable_settings(spec).items() if name in _LIVE
    }
    live.update({name: redis_string(value) for name, value in _read_only_settings(spec).items()})
    if fenced:
        live[_FENCE_SETTING] = str(NEVER_ENOUGH_REPLICAS)
    return live


def _read_only_settings(spec: InstanceSpec) -> dict[str, SettingValue]:
    """Redis has no read-only mode for a master; asking for more replicas to acknowledge
    every write than it can ever have makes it refuse writes (``NOREPLICAS``) and keep
    serving reads: the volume guard's read-only (``spec.read_only``). A replica ignores
    the setting (it applies its upstream's stream whatever it says) and is read-only
    anyway; a promoted one then honours it."""
    return {"min-replicas-to-write": NEVER_ENOUGH_REPLICAS if spec.read_only else 0}


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
        "repl-diskless-sync-delay": 0,  # Redis's 5 s would delay every replica's full sync
        "repl-ping-replica-period": REPLICA_PING_PERIOD_S,
        "replica-read-only": True,
    }


def render_config(settings: Mapping[str, SettingValue]) -> str:
    """The text of ``redis.conf``: one ``name value`` line per setting, in order."""
    lines = [f"{name} {render_value(value)}" for name, value in settings.items()]
    return _HEADER + "\n".join(lines) + "\n"


def replication_marker(upstream: Upstream | None = None, *, fenced: bool = False) -> str:
    """The replication marker's text: following ``upstream`` as its replication account,
    a primary whose writes are ``fenced``, or (neither) a primary. ``BadRequest`` naming
    the problem (never the password) for an address, port, account or password Redis
    could not take."""
    marker: dict[str, object] = {"version": _MARKER_VERSION}
    if upstream is not None:
        _check_upstream(upstream)
        marker["follow"] = {
            "host": upstream_host(upstream.host),
            "port": upstream.port,
            "user": upstream.user,
            "password": upstream.password,
        }
    elif fenced:
        marker["fenced"] = True
    return json.dumps(marker) + "\n"


def replication_settings(marker: str) -> dict[str, SettingValue]:
    """The ``redis.conf`` directives of the replication ``marker`` text (none for ""):
    they are rendered after, and override, ``server_settings``. ``EngineError`` for a
    damaged marker."""
    if not marker.strip():
        return {}
    parsed = _parse_marker(marker)
    follow = parsed.get("follow")
    if isinstance(follow, dict):
        try:
            upstream = Upstream(
                host=str(follow["host"]),
                port=int(follow["port"]),
                user=str(follow["user"]),
                password=str(follow["password"]),
            )
            _check_upstream(upstream)
        except (KeyError, TypeError, ValueError, BadRequest):
            raise _damaged_marker() from None
        return {
            "replicaof": (upstream_host(upstream.host), str(upstream.port)),
            "masteruser": upstream.user,
            "masterauth": upstream.password,
        }
    if parsed.get("fenced") is True:
        return {_FENCE_SETTING: NEVER_ENOUGH_REPLICAS}
    return {}


def cluster_marker(
    *,
    user: str,
    password: str,
    node_timeout_ms: int,
    announce_ip: str | None,
    bus_port: int | None = None,
) -> str:
    """The cluster marker's text: a cluster node whose replicas authenticate to their
    master as ``user`` with ``password``, its bus on ``bus_port`` (None: client port +
    10000). ``BadRequest`` naming the problem (never the password) for a timeout,
    address, port, account or password Redis could not take."""
    _check_cluster(user, password, node_timeout_ms, announce_ip)
    _check_bus_port(bus_port)
    marker = {
        "version": _MARKER_VERSION,
        "user": user,
        "password": password,
        "node_timeout_ms": node_timeout_ms,
        "announce_ip": None if announce_ip is None else str(ipaddress.ip_address(announce_ip)),
        "bus_port": bus_port,
    }
    return json.dumps(marker) + "\n"


def cluster_settings(marker: str, paths: InstancePaths) -> dict[str, SettingValue]:
    """The ``redis.conf`` directives of the cluster ``marker`` text (none for "").
    ``EngineError`` for a damaged marker."""
    if not marker.strip():
        return {}
    try:
        parsed = json.loads(marker)
        if parsed["version"] != _MARKER_VERSION:
            raise ValueError(parsed["version"])
        user, password = str(parsed["user"]), str(parsed["password"])
        timeout = int(parsed["node_timeout_ms"])
        announce = parsed["announce_ip"]
        _check_cluster(user, password, timeout, None if announce is None else str(announce))
        bus_port = parsed.get("bus_port")  # absent from markers written before it existed
        _check_bus_port(bus_port)
    except (KeyError, TypeError, ValueError, BadRequest):
        raise EngineError(
            f"the cluster marker {CLUSTER_FILE} is damaged; enable the cluster again"
        ) from None
    settings: dict[str, SettingValue] = {
        "cluster-enabled": True,
        "cluster-config-file": str(paths.data_dir / CLUSTER_NODES_FILE),
        "cluster-node-timeout": timeout,
        # membership is the control plane's: Redis must not move replicas between masters
        # or turn a master that lost its slots into a replica on its own
        "cluster-allow-replica-migration": False,
        "masteruser": user,
        "masterauth": password,
    }
    if bus_port is not None:
        settings["cluster-port"] = int(bus_port)
    if announce is not None:
        settings["cluster-announce-ip"] = str(announce)
    return settings


def _check_bus_port(port: object) -> None:
    if port is not None and (type(port) is not int or not 1 <= port <= 65535):
        raise BadRequest(f"cluster bus port {port!r} is outside 1-65535")


def _check_cluster(user: str, password: str, node_timeout_ms: int, announce_ip: str | None) -> None:
    low, high = CLUSTER_NODE_TIMEOUT_MS
    if not low <= node_timeout_ms <= high:
        raise BadRequest(f"cluster node timeout {node_timeout_ms} ms is outside {low}-{high} ms")
    if announce_ip is not None:
        try:
            ipaddress.ip_address(announce_ip)
        except ValueError:
            raise BadRequest(
                f"cluster announce address {announce_ip!r} is not an IP address"
            ) from None
    if not NAME_PATTERN.fullmatch(user) or not is_internal_user(user):
        raise BadRequest(
            f"{user!r} is not a Coffer internal account (a name starting with 'coffer')"
        )
    if not password or any(ord(char) < 0x20 or ord(char) == 0x7F for char in password):
        raise BadRequest("the cluster password must be non-empty, without control characters")


def is_fenced(marker: str) -> bool:
    """Whether the replication ``marker`` text fences the instance's writes."""
    return _FENCE_SETTING in replication_settings(marker)


def _parse_marker(marker: str) -> dict[str, object]:
    try:
        parsed = json.loads(marker)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or parsed.get("version") != _MARKER_VERSION:
        raise _damaged_marker()
    return parsed


def _damaged_marker() -> EngineError:
    return EngineError(
        f"the replication marker {REPLICATION_FILE} is damaged; "
        "make the instance follow its upstream again, or promote it"
    )


def _check_upstream(upstream: Upstream) -> None:
    upstream_host(upstream.host)
    if not 1 <= upstream.port <= 65535:
        raise BadRequest(f"upstream port {upstream.port} is outside 1-65535")
    if not NAME_PATTERN.fullmatch(upstream.user) or not is_internal_user(upstream.user):
        raise BadRequest(
            f"upstream account {upstream.user!r} is not a Coffer replication account "
            "(a name starting with 'coffer')"
        )
    password = upstream.password
    if not password or any(ord(char) < 0x20 or ord(char) == 0x7F for char in password):
        raise BadRequest(
            "the upstream's replication password must be non-empty, without control characters"
        )


def upstream_host(host: str) -> str:
    """``host`` as ``replicaof`` takes it (an IP address normalised, or a host name);
    ``BadRequest`` for anything else."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host and _HOST_TEXT.fullmatch(host) and not host.startswith("-"):
        return host
    raise BadRequest(f"upstream host {host!r} is not an IP address or host name")


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
