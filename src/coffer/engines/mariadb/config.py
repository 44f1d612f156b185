"""MariaDB configuration text, rendered by pure functions (no I/O).

One file, ``my.cnf`` in the instance root (beside, not inside, the data directory, so a
restore that replaces the data directory keeps it), rewritten whole at each configure
and passed as ``mariadbd --defaults-file=<root>/my.cnf``: the server reads that file
alone, never ``/etc/mysql``. It holds one ``[mariadbd]`` group, in this order (a later
line wins):

1. defaults derived from the flavor (``CATALOG.memory_settings``: every memory buffer
   sized so the worst case fits the flavor's RAM; the redo log kept to an eighth of the
   volume) and ``character_set_server = utf8mb4``; where a configuration group raises a
   limit that MariaDB caps by a companion setting the group leaves alone, the
   companion's default follows it (``tmp_table_size`` lifts ``max_heap_table_size``,
   which caps in-memory temporary tables too, and ``join_buffer_size`` lifts
   ``join_buffer_space_limit``), so the group's value takes effect;
2. the instance's configuration-group parameters (``spec.parameters``);
3. the settings Coffer manages: paths (data directory, socket and pid file in the
   private run directory, temporary files there too, slow log in the data directory),
   port and bind address, ``skip_name_resolve``, the server identity and the binary log.

Errors go to stderr (no ``log_error``), which the agent sends to the instance log.

The binary log is on from the start (``ROW`` format, kept 7 days) for point-in-time
recovery and GTID replicas later. Its files close at ``binlog_file_bytes`` (a
sixteenth of the volume, 16 MiB to 256 MiB, where MariaDB's default is 1 GiB): a file
is purged, shipped as complete and copied whole by a point-in-time restore only once
closed, so on a small volume a 1 GiB file would outgrow the volume first. With row-based
logging
``log_bin_trust_function_creators`` is safe, and it lets tenants without SUPER create
functions and triggers. ``server_id`` is derived from the instance id, so every clone
of the template (and every replica restored from another instance's backup) has its own.

Replication (``replication`` module): every instance may become a source or a replica,
so all share GTID domain 0 and log what they replicate (``log_slave_updates``: a
promoted replica's binary log then holds the changes its fellow replicas re-pointed to
it by GTID still need); relay logs are named ``relay-bin`` in the data directory (not
after the host name). A replica (``server_settings``' ``replica``) is ``read_only``: its
tenants, who never hold SUPER or READ ONLY ADMIN, cannot write.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths
from coffer.engines.mariadb.catalog import CATALOG, DEFAULT_CHARACTER_SET, parse_size
from coffer.engines.mariadb.guestlogs import SLOW_LOG_FILE, log_defaults, log_switches
from coffer.errors import BadRequest, EngineError

__all__ = [
    "BINLOG_BASENAME",
    "CONFIG_FILE",
    "MAX_SOCKET_PATH_BYTES",
    "PID_FILE",
    "RELAY_LOG_BASENAME",
    "SLOW_LOG_FILE",
    "SOCKET_FILE",
    "SettingValue",
    "base_settings",
    "binlog_file_bytes",
    "config_path",
    "pid_path",
    "render_settings",
    "render_value",
    "server_id",
    "server_settings",
    "socket_path",
]

CONFIG_FILE = "my.cnf"
SOCKET_FILE = "mariadbd.sock"
PID_FILE = "mariadbd.pid"
BINLOG_BASENAME = "mariadb-bin"
RELAY_LOG_BASENAME = "relay-bin"
#: ``sizeof(sockaddr_un.sun_path) - 1`` on Linux; MariaDB refuses longer socket paths.
MAX_SOCKET_PATH_BYTES = 107
#: Binary logs older than this are purged (point-in-time recovery reaches this far back).
BINLOG_EXPIRE_S = 7 * 24 * 3600
#: Bounds of ``max_binlog_size`` (``binlog_file_bytes``).
BINLOG_FILE_MIN_BYTES = 16 * 1024 * 1024
BINLOG_FILE_MAX_BYTES = 256 * 1024 * 1024
#: Small temporary tablespace: InnoDB writes it in full at every start.
TEMP_DATA_FILE_PATH = "ibtmp1:4M:autoextend"

SettingValue = bool | int | float | str

_GROUP = "[mariadbd]"
_HEADER = "# Written by Coffer at each configure; edits here are lost. Use configuration groups.\n"
_BARE_VALUE = re.compile(r"[A-Za-z0-9_.,:/@%+-]+")
#: A word that needs quotes (``=`` and ``;`` separate Galera's provider options).
_QUOTED_VALUE = re.compile(r"[A-Za-z0-9_.,:/@%+=;-]+")
_HOST_TEXT = re.compile(r"[A-Za-z0-9.:-]+")
_SERVER_ID_SPACE = 4294967295  # server_id is 1 .. 2**32 - 1
#: (parameter, the default that follows it upwards): MariaDB caps the first by the second.
_COMPANION_LIMITS = (
    ("tmp_table_size", "max_heap_table_size"),
    ("join_buffer_size", "join_buffer_space_limit"),
)


def config_path(paths: InstancePaths) -> Path:
    return paths.root / CONFIG_FILE


def socket_path(paths: InstancePaths) -> Path:
    return paths.run_dir / SOCKET_FILE


def pid_path(paths: InstancePaths) -> Path:
    return paths.run_dir / PID_FILE


def server_id(instance_id: str) -> int:
    """A stable ``server_id`` in 1 .. 2**32-1 derived from the instance id."""
    digest = hashlib.sha256(instance_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % _SERVER_ID_SPACE + 1


def binlog_file_bytes(volume_gb: int) -> int:
    """``max_binlog_size`` for a volume of ``volume_gb``: a sixteenth of it, within
    ``BINLOG_FILE_MIN_BYTES`` .. ``BINLOG_FILE_MAX_BYTES`` (whole MiB, as MariaDB wants
    a multiple of 4096)."""
    sixteenth = volume_gb * 1024 // 16 * 1024 * 1024
    return max(BINLOG_FILE_MIN_BYTES, min(BINLOG_FILE_MAX_BYTES, sixteenth))


def base_settings(spec: InstanceSpec) -> dict[str, SettingValue]:
    """The defaults parameters may override: flavor sizing and the server character set.

    ``apply_parameters`` returns a removed parameter to the value here, if any. Depends on
    ``spec.parameters`` only through the companion limits (module docstring), and on
    ``spec.logs`` (``guestlogs.log_defaults``).
    """
    settings: dict[str, SettingValue] = dict(CATALOG.memory_settings(spec.ram_mb))
    log_bytes = parse_size(str(settings["innodb_log_file_size"]))
    volume_cap_mb = max(16, spec.volume_gb * 1024 // 8)
    if log_bytes > volume_cap_mb * 1024 * 1024:
        settings["innodb_log_file_size"] = f"{volume_cap_mb}M"
    for raised, companion in _COMPANION_LIMITS:
        _follow(settings, spec.parameters, raised, companion)
    settings["character_set_server"] = DEFAULT_CHARACTER_SET
    settings.update(log_defaults(spec))
    return settings


def server_settings(
    spec: InstanceSpec, paths: InstancePaths, *, replica: bool = False
) -> dict[str, SettingValue]:
    """Every setting of ``my.cnf``: defaults, then ``spec.parameters``, then the settings
    Coffer manages (which parameters may not override). ``replica``: the instance follows
    an upstream (or is a fenced primary), so it is read-only whatever ``spec.read_only``
    says.

    Raises ``BadRequest`` for a refused parameter or address and ``EngineError`` for
    instance paths MariaDB cannot use.
    """
    CATALOG.validate_parameters(spec.parameters)
    settings = base_settings(spec)
    settings.update(spec.parameters)
    settings.update(_managed_settings(spec, paths, replica=replica))
    return settings


def _follow(
    settings: dict[str, SettingValue],
    parameters: Mapping[str, object],
    raised: str,
    companion: str,
) -> None:
    """Lift ``companion``'s default to the group's ``raised`` value unless the group sets
    ``companion`` itself (values are validated integers by then)."""
    value = parameters.get(raised)
    if companion in parameters or isinstance(value, bool) or not isinstance(value, int):
        return
    if value > parse_size(str(settings[companion])):
        settings[companion] = value


def _managed_settings(
    spec: InstanceSpec, paths: InstancePaths, *, replica: bool
) -> dict[str, SettingValue]:
    _check_port(spec.port)
    for path in (paths.data_dir, paths.run_dir):
        _check_path(path)
    socket = socket_path(paths)
    if len(str(socket).encode()) > MAX_SOCKET_PATH_BYTES:
        raise EngineError(
            f"unix socket path {str(socket)!r} is longer than {MAX_SOCKET_PATH_BYTES} bytes; "
            "use a shorter instance root"
        )
    return {
        "datadir": str(paths.data_dir),
        "socket": str(socket),
        "pid_file": str(pid_path(paths)),
        "tmpdir": str(paths.run_dir),
        "port": spec.port,
        "bind_address": _bind_address(spec.bind_host),
        "skip_name_resolve": True,
        "symbolic_links": False,
        "innodb_temp_data_file_path": TEMP_DATA_FILE_PATH,
        **log_switches(spec, paths),
        "server_id": server_id(spec.instance_id),
        "log_bin": BINLOG_BASENAME,
        "binlog_format": "ROW",
        "binlog_expire_logs_seconds": BINLOG_EXPIRE_S,
        "max_binlog_size": binlog_file_bytes(spec.volume_gb),
        "log_bin_trust_function_creators": True,
        "log_slave_updates": True,
        "relay_log": RELAY_LOG_BASENAME,
        # the agent's volume guard, and replicas: tenants hold no privilege that
        # overrides read_only
        "read_only": spec.read_only or replica,
    }


def render_settings(settings: Mapping[str, SettingValue]) -> str:
    """The text of ``my.cnf``: one ``[mariadbd]`` group, one ``name = value`` per setting."""
    lines = [f"{name} = {render_value(value)}" for name, value in settings.items()]
    return _HEADER + _GROUP + "\n" + "\n".join(lines) + "\n"


def render_value(value: SettingValue) -> str:
    """An option-file value: ``ON``/``OFF``, a number, ``""`` or a plain word.

    Words may hold letters, digits and ``_.,:/@%+-`` only, so no value can carry a
    quote, an escape, a comment or a line break into the file; a word that also holds
    ``=`` or ``;`` (Galera's ``wsrep_provider_options``) is written in double quotes.
    """
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if value == "":
        return '""'
    if _BARE_VALUE.fullmatch(value):
        return value
    if _QUOTED_VALUE.fullmatch(value):
        return f'"{value}"'
    raise BadRequest(
        f"configuration value {value!r} may hold only letters, digits and '_.,:/@%+-=;'"
    )


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise BadRequest(f"port {port} is outside 1-65535")


def _check_path(path: Path) -> None:
    if not path.is_absolute() or not _BARE_VALUE.fullmatch(str(path)):
        raise EngineError(
            f"instance path {str(path)!r} must be absolute and hold only letters, digits "
            "and '_./+-'"
        )


def _bind_address(bind_host: str) -> str:
    if bind_host == "*":
        return bind_host
    try:
        return str(ipaddress.ip_address(bind_host))
    except ValueError:
        pass
    if _HOST_TEXT.fullmatch(bind_host):
        return bind_host
    raise BadRequest(f"bind host {bind_host!r} is not an IP address or host name")
