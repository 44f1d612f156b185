"""PostgreSQL configuration text, rendered by pure functions (no I/O).

File layout in the data directory:

* ``postgresql.conf`` — initdb's file, untouched except for one trailing line
  ``include = 'coffer.conf'`` (added once by ``with_include``). ``include`` rather than
  ``include_if_exists`` so that a missing ``coffer.conf`` stops the server instead of
  silently starting it on the default port.
* ``coffer.conf`` — everything Coffer decides (ports, sockets, memory, logging, the
  instance's parameters), rewritten whole at each configure. It is read after
  ``postgresql.conf`` and so wins over it; only ``postgresql.auto.conf`` (``ALTER SYSTEM``,
  open to root users alone) is read later.
* ``pg_hba.conf`` — rewritten whole: trust on the private unix socket (also for
  replication connections, which ``pg_basebackup`` needs), the internal superuser
  refused over TCP, scram-sha-256 for everyone else; replication connections over TCP
  for the replication role alone (scram-sha-256), whether or not the instance has
  replicas (the role exists only once a replica was opened: ``replication``).
* ``standby.signal`` — present while the instance is a replica (``replication``): it
  then starts in standby mode, streaming from the upstream ``configure`` renders.

Directories on the instance's volume, beside the data directory:

* ``wal_archive/`` — continuous archiving (``archive_mode = on``): ``archive_command``
  copies each completed WAL segment there under a temporary name, syncs it and renames it
  into place; a file of the same name already there is accepted only if identical
  (a re-archive after a crash), never overwritten. ``archive_timeout`` is left off:
  incremental backups switch segments themselves, and until the archive is shipped off
  the volume a forced switch every minute would fill small volumes with 16 MiB files.
* ``restore_wal/`` — exists only between a restore and the end of its recovery: the WAL
  the restore brought, read by ``restore_command``. While it exists (and
  ``recovery.signal`` does) the settings carry the recovery settings and ``hot_standby =
  off``, so no session sees the data before the replay ends and a smaller flavor's
  ``max_connections`` cannot abort the replay. A point-in-time restore leaves its target
  there too (``RECOVERY_TARGET``), rendered as ``recovery_target_time``.
* ``fenced`` — exists while a switchover fences the instance: transactions are then
  read-only by default (``replication``).
* ``upstream.json`` and ``upstream.pgpass`` — exist only while the instance is a replica
  (``upstream``): what it follows, rendered as ``primary_conninfo`` (which names the
  password file, never the password) and ``primary_slot_name``. Outside the data
  directory, so neither a backup nor a ``pg_rewind`` ever carries them.
* ``.rewind.pgpass`` — exists only while ``pg_rewind`` runs (``rewind``): the password
  file it connects to the new primary with.

Always rendered: ``wal_log_hints = on`` (so that a former primary can be rewound with
``pg_rewind``; templates have no data checksums) and ``max_slot_wal_keep_size``, a
quarter of the volume: a replica gone for good cannot fill its source's volume with WAL
its slot keeps (past that, the slot is invalidated and the replica must be re-seeded).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from coffer.contracts.engine import InstanceSpec
from coffer.engines.postgresql.catalog import CATALOG, INTERNAL_SUPERUSER, REPLICATION_USER
from coffer.engines.postgresql.guestlogs import log_settings
from coffer.errors import BadRequest, EngineError

__all__ = [
    "ARCHIVE_ENABLED",
    "DEFAULT_ALLOWED_CIDRS",
    "FENCE_MARKER",
    "HBA_FILE",
    "INCLUDE_LINE",
    "MAIN_FILE",
    "MAX_SOCKET_PATH_BYTES",
    "RECOVERY_SIGNAL",
    "RECOVERY_TARGET",
    "REWIND_PASSFILE",
    "SETTINGS_FILE",
    "STANDBY_SIGNAL",
    "StandbySource",
    "archive_command",
    "primary_conninfo",
    "render_hba",
    "render_settings",
    "render_value",
    "restore_command",
    "restore_wal_dir",
    "server_settings",
    "socket_path",
    "wal_archive_dir",
    "with_include",
]

SETTINGS_FILE = "coffer.conf"
HBA_FILE = "pg_hba.conf"
MAIN_FILE = "postgresql.conf"
INCLUDE_LINE = f"include = '{SETTINGS_FILE}'"
#: present in the WAL archive once a backup needs it (see ``archive_command``)
ARCHIVE_ENABLED = ".enabled"
#: PostgreSQL's marker for archive recovery; the server removes it when recovery ends.
RECOVERY_SIGNAL = "recovery.signal"
#: PostgreSQL's marker for standby mode (a replica); the server removes it at promotion.
STANDBY_SIGNAL = "standby.signal"
#: in the instance's root while a switchover fences it (``replication``)
FENCE_MARKER = "fenced"
#: in ``restore_wal/``: the ``recovery_target_time`` of a point-in-time restore, if any
RECOVERY_TARGET = "recovery_target"
#: in the instance's root while ``pg_rewind`` runs: the password file it connects with
REWIND_PASSFILE = ".rewind.pgpass"
#: ``sizeof(sockaddr_un.sun_path) - 1`` on Linux; PostgreSQL and libpq refuse longer paths.
MAX_SOCKET_PATH_BYTES = 107
DEFAULT_ALLOWED_CIDRS: tuple[str, ...] = ("0.0.0.0/0", "::/0")

SettingValue = bool | int | float | str

_HEADER = "# Written by Coffer at each configure; edits here are lost. Use configuration groups.\n"
_SOCKET_DIR_TEXT = re.compile(r"[A-Za-z0-9_./+-]+")
_HOST_TEXT = re.compile(r"[A-Za-z0-9.:-]+")
_CLUSTER_NAME_TEXT = re.compile(r"[A-Za-z0-9_.-]{1,63}")
_CONNINFO_NAME_TEXT = re.compile(r"[A-Za-z0-9_]{1,63}")
#: ``max_slot_wal_keep_size``: this fraction of the volume
_SLOT_WAL_SHARE = 4


@dataclass(frozen=True)
class StandbySource:
    """What a replica streams from: its upstream's address and replication role, the
    physical slot kept for it there, and the file holding the role's password."""

    host: str
    port: int
    user: str
    slot: str
    passfile: Path


def socket_path(socket_dir: Path, port: int) -> Path:
    """The unix socket file PostgreSQL creates in ``socket_dir`` for ``port``."""
    return socket_dir / f".s.PGSQL.{port}"


def wal_archive_dir(root: Path) -> Path:
    """Where ``archive_command`` puts completed WAL segments of the instance at ``root``."""
    return root / "wal_archive"


def restore_wal_dir(root: Path) -> Path:
    """Where a restore leaves the WAL its recovery replays (gone once recovery ended)."""
    return root / "restore_wal"


def server_settings(
    spec: InstanceSpec,
    *,
    socket_dir: Path,
    archive_dir: Path | None = None,
    restore_dir: Path | None = None,
    recovery_target: str | None = None,
    standby: StandbySource | None = None,
    fenced: bool = False,
) -> dict[str, SettingValue]:
    """Every setting of ``coffer.conf``: memory sizing, then ``spec.parameters``, then
    what the switched-on logs need (``guestlogs``), then the settings Coffer manages
    (which parameters may not override).

    ``archive_dir`` turns on continuous archiving into it; ``restore_dir`` adds archive
    recovery from it (only while a restore's recovery is pending), stopping before the
    first transaction committed after ``recovery_target`` (a timestamp) if given;
    ``standby`` adds streaming from it (read by the server in standby mode only);
    ``fenced`` makes transactions read-only by default, as ``spec.read_only`` does. Raises
    ``BadRequest`` for a refused parameter or address and ``EngineError`` for a socket,
    archive, restore directory or upstream PostgreSQL cannot use.
    """
    CATALOG.validate_parameters(spec.parameters)
    settings: dict[str, SettingValue] = dict(CATALOG.memory_settings(spec.ram_mb))
    settings.update(spec.parameters)
    settings.update(log_settings(spec))
    settings.update(_managed_settings(spec, socket_dir=socket_dir))
    if fenced:
        settings["default_transaction_read_only"] = True
    if archive_dir is not None:
        settings.update(
            {
                "wal_level": "replica",
                "archive_mode": True,
                "archive_command": archive_command(archive_dir),
            }
        )
    if restore_dir is not None:
        settings.update(
            {
                "restore_command": restore_command(restore_dir),
                "recovery_target_action": "promote",
                "hot_standby": False,
            }
        )
        if recovery_target is not None:
            settings["recovery_target_time"] = recovery_target
    if standby is not None:
        settings.update(
            {
                "primary_conninfo": primary_conninfo(standby),
                "primary_slot_name": standby.slot,
                "recovery_target_timeline": "latest",
                "hot_standby": True,
            }
        )
    return settings


def primary_conninfo(standby: StandbySource) -> str:
    """The libpq connection string of a replica's WAL receiver: no password, only the
    file holding it; the slot's name as ``application_name`` (shown by the upstream's
    ``pg_stat_replication``)."""
    if not _HOST_TEXT.fullmatch(standby.host):
        raise BadRequest(f"upstream host {standby.host!r} is not an IP address or host name")
    _check_port(standby.port)
    for what, name in (("replication user", standby.user), ("replication slot", standby.slot)):
        if not _CONNINFO_NAME_TEXT.fullmatch(name):
            raise BadRequest(f"{what} {name!r} is invalid: use 1-63 letters, digits and '_'")
    passfile = _shell_safe_dir(standby.passfile, "upstream password file")
    return (
        f"host={standby.host} port={standby.port} user={standby.user} passfile={passfile} "
        f"application_name={standby.slot} connect_timeout=5"
    )


def archive_command(archive_dir: Path) -> str:
    """The shell command that archives ``%p`` (named ``%f``) into ``archive_dir``.

    Until the first backup creates ``ARCHIVE_ENABLED`` in ``archive_dir``, segments are
    let go unarchived (nothing could use them: an incremental needs a backup before it).
    Copy to a hidden temporary name, fsync, rename, fsync the directory. An existing file
    of the same name passes only if identical; a different one fails the command (the
    archiver retries and logs), so nothing archived is ever replaced.
    """
    directory = _shell_safe_dir(archive_dir, "WAL archive")
    return (
        f"d='{directory}'; if [ ! -f \"$d/{ARCHIVE_ENABLED}\" ]; then true; "
        'elif [ -f "$d/%f" ]; then cmp -s \'%p\' "$d/%f"; '
        'else cp \'%p\' "$d/.%f.tmp" && sync "$d/.%f.tmp" '
        '&& mv "$d/.%f.tmp" "$d/%f" && sync "$d"; fi'
    )


def restore_command(restore_dir: Path) -> str:
    """The shell command that fetches ``%f`` from ``restore_dir`` (fails if absent)."""
    directory = _shell_safe_dir(restore_dir, "restore WAL")
    return f"[ -f '{directory}/%f' ] && cp '{directory}/%f' '%p'"


def _managed_settings(spec: InstanceSpec, *, socket_dir: Path) -> dict[str, SettingValue]:
    _check_port(spec.port)
    _check_socket_dir(socket_dir, spec.port)
    managed: dict[str, SettingValue] = {
        "port": spec.port,
        "listen_addresses": _listen_address(spec.bind_host),
        "unix_socket_directories": str(socket_dir),
        "unix_socket_permissions": "0700",
        "password_encryption": "scram-sha-256",
        "log_destination": "stderr",
        "logging_collector": False,
        "fsync": True,
        "wal_log_hints": True,
        "max_slot_wal_keep_size": f"{max(1, spec.volume_gb * 1024 // _SLOT_WAL_SHARE)}MB",
    }
    if spec.read_only:
        managed["default_transaction_read_only"] = True
    if _CLUSTER_NAME_TEXT.fullmatch(spec.instance_id):
        managed["cluster_name"] = spec.instance_id
    return managed


def render_settings(settings: Mapping[str, SettingValue]) -> str:
    """The text of ``coffer.conf``: one ``name = value`` line per setting, in order."""
    lines = [f"{name} = {render_value(value)}" for name, value in settings.items()]
    return _HEADER + "\n".join(lines) + "\n"


def render_value(value: SettingValue) -> str:
    """A configuration-file literal: ``on``/``off``, a number, or a quoted string."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if any(ord(char) < 0x20 for char in value):
        raise BadRequest("configuration strings must not contain control characters")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def render_hba(*, allowed_cidrs: Sequence[str] = DEFAULT_ALLOWED_CIDRS) -> str:
    """The text of ``pg_hba.conf``. First matching line wins.

    Local socket: trust (the socket directory is private to the engine user and root),
    including replication connections (``pg_basebackup``; only roles with REPLICATION,
    i.e. the internal superuser and root, may open them).
    TCP: the internal superuser is refused from everywhere; everyone else authenticates
    with scram-sha-256 from loopback and from ``allowed_cidrs``. Replication connections
    over TCP: the replication role alone, with scram-sha-256, from the same networks
    (no other line matches them, so every other role is refused).
    """
    networks = ["127.0.0.1/32", "::1/128", *(_network(cidr) for cidr in allowed_cidrs)]
    rows = [
        ("local", "all", "all", "", "trust"),
        ("local", "replication", "all", "", "trust"),
        ("host", "all", INTERNAL_SUPERUSER, "0.0.0.0/0", "reject"),
        ("host", "all", INTERNAL_SUPERUSER, "::/0", "reject"),
        *(("host", "all", "all", network, "scram-sha-256") for network in networks),
        *(("host", "replication", REPLICATION_USER, net, "scram-sha-256") for net in networks),
    ]
    lines = [
        f"{kind:<6} {db:<11} {user:<17} {addr:<14} {method}".rstrip()
        for kind, db, user, addr, method in rows
    ]
    header = f"# {'TYPE':<4} {'DB':<11} {'USER':<17} {'ADDRESS':<14} METHOD\n"
    return _HEADER + header + "\n".join(lines) + "\n"


def with_include(main_conf: str) -> str:
    """``postgresql.conf`` text ending with the include of ``coffer.conf`` (added once)."""
    if any(line.strip() == INCLUDE_LINE for line in main_conf.splitlines()):
        return main_conf
    separator = "" if not main_conf or main_conf.endswith("\n") else "\n"
    return f"{main_conf}{separator}\n# Coffer's settings, last so that they win.\n{INCLUDE_LINE}\n"


def _network(cidr: str) -> str:
    try:
        return str(ipaddress.ip_network(cidr, strict=False))
    except ValueError:
        raise BadRequest(f"allowed CIDR {cidr!r} is not an IP network") from None


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise BadRequest(f"port {port} is outside 1-65535")


def _check_socket_dir(socket_dir: Path, port: int) -> None:
    if not socket_dir.is_absolute() or not _SOCKET_DIR_TEXT.fullmatch(str(socket_dir)):
        raise EngineError(
            f"socket directory {str(socket_dir)!r} must be an absolute path of letters, "
            "digits and '_./+-'"
        )
    path = socket_path(socket_dir, port)
    if len(str(path).encode()) > MAX_SOCKET_PATH_BYTES:
        raise EngineError(
            f"unix socket path {str(path)!r} is longer than {MAX_SOCKET_PATH_BYTES} bytes; "
            "use a shorter instance root"
        )


def _shell_safe_dir(directory: Path, what: str) -> str:
    """``directory`` as text safe inside single quotes of a shell command."""
    text = str(directory)
    if not directory.is_absolute() or not _SOCKET_DIR_TEXT.fullmatch(text):
        raise EngineError(
            f"{what} directory {text!r} must be an absolute path of letters, digits and '_./+-'"
        )
    return text


def _listen_address(bind_host: str) -> str:
    if bind_host == "*":
        return bind_host
    try:
        return str(ipaddress.ip_address(bind_host))
    except ValueError:
        pass
    if _HOST_TEXT.fullmatch(bind_host):
        return bind_host
    raise BadRequest(f"bind host {bind_host!r} is not an IP address or host name")
