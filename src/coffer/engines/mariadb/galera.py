"""Galera clusters of MariaDB instances, engine side (MariaDB 10.11 + Debian's galera-4).

A cluster is 3+ ordinary instances (each its own OS account, port and volume). The
control plane decides the membership and leases every member's ports; this module only
records what one instance must know and renders it.

Membership marker
    ``join_cluster`` writes ``<root>/galera.json`` (0600, the instance's account): the
    cluster name, this member, all members (``GaleraMember``: instance id, host, client
    port and the Galera ports: group communication, IST, SST), whether this member
    starts a new cluster, and the state-transfer password (kept in this file and in the
    rendered ``my.cnf``, both 0600: nowhere else, never on a command line; the donor's
    SST script hands it to ``mariabackup`` through its environment). Without the marker
    an instance is a standalone server and nothing here changes it.

What ``configure`` renders (``cluster_settings``)
    ``wsrep_on``, ``wsrep_provider`` (the galera-4 library), ``wsrep_cluster_name``,
    ``wsrep_cluster_address = gcomm://`` every member's ``host:gcomm_port``,
    ``wsrep_node_name`` (the instance id), ``wsrep_node_address`` (host),
    ``wsrep_node_incoming_address`` (host:client port), ``wsrep_provider_options``
    (``base_host``, ``base_port`` and ``gmcast.listen_addr`` on the group communication
    port, so Galera listens on the member's host only; ``ist.recv_addr``; a ``gcache.size``
    of a sixteenth of the volume, 32 MiB to 1 GiB: how far back a rejoining member can be
    served by IST), ``wsrep_sst_method = mariabackup`` with
    ``wsrep_sst_auth = coffer_sst:<password>``, ``wsrep_sst_receive_address`` (host:SST
    port), ``binlog_format = ROW`` and ``innodb_autoinc_lock_mode = 2``. The SST
    receiver (``socat`` run by MariaDB's script) is MariaDB's own: it may listen on
    every address of the host for the few seconds of a transfer.

Starting
    ``command`` adds ``--wsrep-new-cluster`` while the marker says ``bootstrap`` (the
    first member, or the member a whole-cluster recovery starts from). ``settle``, which
    ``lifecycle.bootstrap`` runs first, waits until the node is Synced in a Primary
    component; on a bootstrapping node it then makes the SST account
    ``coffer_sst@localhost`` (``catalog.SST_USER``, reserved; RELOAD, PROCESS, LOCK
    TABLES, BINLOG MONITOR; its password sent as a hash and replicated to every member
    as DDL) and clears ``bootstrap``, so a later restart joins instead. Members that
    join by SST receive the account with the data.

Membership changes
    ``update_members`` rewrites the address list (grow: every member, the new one
    included, lists all; shrink: the removed member is stopped first, a clean shutdown
    leaves the cluster, and the others forget it). It takes effect at the member's next
    start: a running member needs no change, because ``wsrep_cluster_address`` is read
    only to find peers when the node (re)joins; live membership is Galera's own
    (``galera_state``'s ``cluster_size``). No ``SET GLOBAL wsrep_cluster_address`` is
    issued (it would make the node leave and rejoin).

Whole-cluster recovery (every member stopped or crashed)
    1. ``recovery_position`` on every member: ``grastate.dat``'s uuid, seqno and
       ``safe_to_bootstrap``; a seqno of -1 (the node crashed) is recovered from InnoDB
       with ``mariadbd --wsrep-recover`` run as the instance's account, and written back
       to ``grastate.dat`` so the next start begins from it.
    2. Pick the member with the highest seqno (all of the same uuid; on a tie, one with
       ``safe_to_bootstrap``), call ``mark_safe_to_bootstrap`` on it, then configure,
       start and bootstrap it (``--wsrep-new-cluster``).
    3. Start the others unchanged: they rejoin by IST if the new Primary's gcache holds
       what they miss, else by SST.
    Bootstrapping any member but the most advanced loses the transactions only the more
    advanced ones hold.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths
from coffer.engines.host import EngineUser, tool_env, write_private_file
from coffer.engines.mariadb import statements as q
from coffer.engines.mariadb.catalog import SST_USER
from coffer.engines.mariadb.config import SettingValue, config_path
from coffer.engines.mariadb.connection import Session, connect, describe, translate_errors
from coffer.errors import BadRequest, EngineError

__all__ = [
    "GALERA_MARKER",
    "GRASTATE",
    "PROVIDER_PATHS",
    "SETTLE_S",
    "GaleraMember",
    "GaleraState",
    "LocalState",
    "RecoveryPosition",
    "bootstrapping",
    "cluster_settings",
    "galera_state",
    "is_member",
    "join_cluster",
    "mark_safe_to_bootstrap",
    "recovery_position",
    "settle",
    "update_members",
]

GALERA_MARKER = "galera.json"
#: Galera's saved state in the data directory.
GRASTATE = "grastate.dat"
#: Where Debian's galera-4 installs the provider (the first that exists is used).
PROVIDER_PATHS = (Path("/usr/lib/galera/libgalera_smm.so"), Path("/usr/lib/libgalera_smm.so"))
#: How long ``settle`` waits for the node to be Synced in a Primary component.
SETTLE_S = 300.0
_DEFAULT_SERVER = Path("/usr/sbin/mariadbd")
_RECOVER_TIMEOUT_S = 300
_PROBE_TIMEOUT_S = 1.0
_STATE_TIMEOUT_S = 2
_GCACHE_MIN_MB = 32
_GCACHE_MAX_MB = 1024
_HOST_TEXT = re.compile(r"[A-Za-z0-9.-]{1,253}")
#: The password goes into ``wsrep_sst_auth = user:password``: no ``:`` and no quoting.
_PASSWORD = re.compile(r"[A-Za-z0-9_.+-]{12,80}")
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: a member's id (its instance id, a UUID for Coffer's instances): ``wsrep_node_name``
_MEMBER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RECOVERED = re.compile(r"WSREP: Recovered position:\s+([0-9a-f-]{36}):(-?\d+)")
_SST_GRANT = "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO %s@%s"
_SST_HOST = "localhost"
_UNKNOWN_UUID = "00000000-0000-0000-0000-000000000000"


class LocalState(StrEnum):
    """``wsrep_local_state_comment``: where this node is in joining the cluster."""

    JOINING = "Joining"
    WAITING_FOR_SST = "Waiting for SST"
    JOINED = "Joined"
    SYNCED = "Synced"
    DONOR = "Donor/Desynced"
    INITIALIZED = "Initialized"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class GaleraMember:
    """One member as the control plane leased it: where clients and peers reach it."""

    instance_id: str
    host: str
    port: int
    gcomm_port: int
    ist_port: int
    sst_port: int

    @property
    def gcomm_address(self) -> str:
        return f"{self.host}:{self.gcomm_port}"

    def check(self) -> None:
        """``BadRequest`` unless the id, host and ports are usable and the ports distinct."""
        if not _MEMBER_ID.fullmatch(self.instance_id):
            raise BadRequest(f"Galera member id {self.instance_id!r} is not a valid name")
        if not _valid_host(self.host):
            raise BadRequest(
                f"Galera member {self.instance_id!r}: host {self.host!r} is not an IPv4 "
                "address or host name"
            )
        ports = (self.port, self.gcomm_port, self.ist_port, self.sst_port)
        if any(not 1 <= port <= 65535 for port in ports) or len(set(ports)) != len(ports):
            raise BadRequest(
                f"Galera member {self.instance_id!r}: ports {ports} must be four distinct "
                "ports in 1-65535 (client, group communication, IST, SST)"
            )


@dataclass(frozen=True)
class GaleraState:
    """What a running member reports (``SHOW GLOBAL STATUS LIKE 'wsrep%'``)."""

    cluster_size: int
    local_state: LocalState
    primary: bool
    ready: bool
    cluster_uuid: str
    seqno: int

    @property
    def synced(self) -> bool:
        return self.primary and self.ready and self.local_state is LocalState.SYNCED


@dataclass(frozen=True)
class RecoveryPosition:
    """A stopped member's last committed position, for whole-cluster recovery."""

    uuid: str
    seqno: int
    safe_to_bootstrap: bool
    recovered: bool
    """The seqno came from ``mariadbd --wsrep-recover`` (the node had crashed)."""


@dataclass(frozen=True)
class _Membership:
    cluster_name: str
    me: GaleraMember
    members: tuple[GaleraMember, ...]
    bootstrap: bool
    sst_password: str

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> _Membership:
        data: dict[str, Any] = json.loads(text)
        return cls(
            cluster_name=str(data["cluster_name"]),
            me=GaleraMember(**data["me"]),
            members=tuple(GaleraMember(**member) for member in data["members"]),
            bootstrap=bool(data["bootstrap"]),
            sst_password=str(data["sst_password"]),
        )


def is_member(paths: InstancePaths) -> bool:
    """Whether the instance was made a Galera member (``join_cluster``)."""
    return (paths.root / GALERA_MARKER).exists()


def bootstrapping(paths: InstancePaths) -> bool:
    """Whether the next start begins a new cluster (``--wsrep-new-cluster``)."""
    membership = _read(paths)
    return membership is not None and membership.bootstrap


def join_cluster(
    paths: InstancePaths,
    spec: InstanceSpec,
    *,
    cluster_name: str,
    me: GaleraMember,
    members: Sequence[GaleraMember],
    bootstrap: bool,
    sst_password: str,
) -> None:
    """Make the stopped, prepared instance a member of ``cluster_name`` from its next
    ``configure`` and start: write the membership marker (module docstring).

    ``bootstrap``: this member starts the cluster (the first one); otherwise it joins
    the members already running, by SST. Validates everything before writing, and
    changes nothing on error: ``BadRequest`` for a bad name, member, password or a
    ``me`` that is not among ``members`` (or differs from ``spec``'s id and port);
    ``EngineError`` if the instance already is a member (``update_members`` changes the
    list; a second bootstrap would split the cluster), if bootstrapping while another
    member already answers on its group communication port, or if joining while none
    does. Probes other members' ports for at most ~1 s each; idempotent it is not."""
    membership = _Membership(
        cluster_name=cluster_name,
        me=me,
        members=tuple(members),
        bootstrap=bootstrap,
        sst_password=sst_password,
    )
    _check_membership(membership, spec)
    if is_member(paths):
        raise EngineError(
            f"instance {spec.instance_id!r} already is a member of a Galera cluster: "
            "change its members with update_members; bootstrapping it again would start "
            "a second cluster"
        )
    others = [member for member in membership.members if member.instance_id != me.instance_id]
    answering = [member for member in others if _answers(member)]
    if bootstrap and answering:
        raise EngineError(
            f"cannot bootstrap cluster {cluster_name!r} at {spec.instance_id!r}: member "
            f"{answering[0].instance_id!r} already answers at {answering[0].gcomm_address} "
            "(a cluster runs; join it instead)"
        )
    if not bootstrap and not answering:
        addresses = ", ".join(member.gcomm_address for member in others) or "none"
        raise EngineError(
            f"cannot join cluster {cluster_name!r}: no other member answers on its group "
            f"communication address ({addresses}); bootstrap the first member first, or "
            "check the member addresses"
        )
    _write(paths, membership)


def update_members(
    paths: InstancePaths, spec: InstanceSpec, members: Sequence[GaleraMember]
) -> None:
    """Replace the member list (grow or shrink) for the member's next start; a running
    member needs nothing more (module docstring). ``BadRequest`` if the list is bad or
    leaves this member out, ``EngineError`` if the instance is not a member; nothing
    changes on error. Idempotent."""
    membership = _read(paths)
    if membership is None:
        raise EngineError(f"instance {spec.instance_id!r} is not a member of a Galera cluster")
    updated = replace(membership, members=tuple(members))
    _check_membership(updated, spec)
    _write(paths, updated)


def cluster_settings(paths: InstancePaths, spec: InstanceSpec) -> dict[str, SettingValue]:
    """The Galera settings ``configure`` adds last (module docstring); empty for an
    instance that is not a member. ``EngineError`` if galera-4 is not installed."""
    membership = _read(paths)
    if membership is None:
        return {}
    me = membership.me
    gcache_mb = max(_GCACHE_MIN_MB, min(_GCACHE_MAX_MB, spec.volume_gb * 1024 // 16))
    options = ";".join(
        (
            f"base_host={me.host}",
            f"base_port={me.gcomm_port}",
            f"gmcast.listen_addr=tcp://{me.host}:{me.gcomm_port}",
            f"ist.recv_addr={me.host}:{me.ist_port}",
            f"gcache.size={gcache_mb}M",
        )
    )
    addresses = ",".join(member.gcomm_address for member in membership.members)
    return {
        "wsrep_on": True,
        "wsrep_provider": str(_provider()),
        "wsrep_cluster_name": membership.cluster_name,
        "wsrep_cluster_address": f"gcomm://{addresses}",
        "wsrep_node_name": me.instance_id,
        "wsrep_node_address": me.host,
        "wsrep_node_incoming_address": f"{me.host}:{me.port}",
        "wsrep_provider_options": options,
        "wsrep_sst_method": "mariabackup",
        "wsrep_sst_auth": f"{SST_USER}:{membership.sst_password}",
        "wsrep_sst_receive_address": f"{me.host}:{me.sst_port}",
        "binlog_format": "ROW",
        "innodb_autoinc_lock_mode": 2,
    }


def settle(paths: InstancePaths, *, timeout_s: float = SETTLE_S) -> None:
    """After a start: wait until the node is Synced in a Primary component; on a
    bootstrapping node make the SST account and clear ``bootstrap``. Nothing for an
    instance that is not a member. ``EngineError`` if the node is not Synced within
    ``timeout_s`` (its last state in the message). Idempotent; blocks."""
    membership = _read(paths)
    if membership is None:
        return
    deadline = time.monotonic() + timeout_s
    last = "not reachable"
    while True:
        try:
            state = galera_state(paths)
        except EngineError as exc:
            last = str(exc)
        else:
            if state.synced:
                break
            last = _describe_state(state)
        if time.monotonic() >= deadline:
            raise EngineError(
                f"Galera member {membership.me.instance_id!r} is not Synced in a Primary "
                f"component after {timeout_s:.0f} s: {last}"
            )
        time.sleep(0.2)
    if membership.bootstrap:
        with translate_errors("making the state transfer account"), connect(paths) as session:
            _ensure_sst_account(session, membership.sst_password)
        _write(paths, replace(membership, bootstrap=False))


def galera_state(paths: InstancePaths) -> GaleraState:
    """The running member's view (2 s timeouts). ``EngineError`` if it cannot be asked
    or is not running with Galera."""
    try:
        with connect(paths, timeout_s=_STATE_TIMEOUT_S, read_timeout_s=_STATE_TIMEOUT_S) as session:
            rows = session.execute("SHOW GLOBAL STATUS LIKE 'wsrep%'")
    except Exception as exc:
        raise EngineError(f"cannot read the Galera state: {describe(exc)}") from None
    status = {str(name).lower(): str(value) for name, value in rows}
    if status.get("wsrep_provider_name", "") == "" or "wsrep_cluster_size" not in status:
        raise EngineError("the server does not run with Galera (wsrep_on is off)")
    comment = status.get("wsrep_local_state_comment", "")
    try:
        local = LocalState(comment)
    except ValueError:
        local = LocalState.UNKNOWN
    return GaleraState(
        cluster_size=int(status.get("wsrep_cluster_size", "0") or 0),
        local_state=local,
        primary=status.get("wsrep_cluster_status") == "Primary",
        ready=status.get("wsrep_ready") == "ON",
        cluster_uuid=status.get("wsrep_cluster_state_uuid", ""),
        seqno=int(status.get("wsrep_last_committed", "-1") or -1),
    )


def recovery_position(paths: InstancePaths, *, server: Path = _DEFAULT_SERVER) -> RecoveryPosition:
    """The stopped member's last committed position (module docstring, step 1): from
    ``grastate.dat``, or when its seqno is -1 from ``mariadbd --wsrep-recover`` run as
    the instance's account (blocks for InnoDB recovery), written back to
    ``grastate.dat``. The engine must be stopped. ``EngineError`` if the instance is not
    a member, has no Galera state, or recovery finds no position."""
    if not is_member(paths):
        raise EngineError(f"{str(paths.root)!r} is not a Galera member")
    uuid, seqno, safe = _read_grastate(paths)
    if seqno != -1:
        return RecoveryPosition(uuid=uuid, seqno=seqno, safe_to_bootstrap=safe, recovered=False)
    recovered_uuid, seqno = _wsrep_recover(paths, server)
    if uuid in ("", _UNKNOWN_UUID):
        uuid = recovered_uuid
    elif recovered_uuid != uuid:
        raise EngineError(
            f"recovered position {recovered_uuid}:{seqno} is of another cluster than "
            f"{GRASTATE}'s {uuid}; this member's data does not belong to the cluster"
        )
    _write_grastate(paths, uuid=uuid, seqno=seqno, safe=safe)
    return RecoveryPosition(uuid=uuid, seqno=seqno, safe_to_bootstrap=safe, recovered=True)


def mark_safe_to_bootstrap(paths: InstancePaths) -> None:
    """Make the stopped member the one a whole-cluster recovery starts from (module
    docstring, step 2): ``safe_to_bootstrap: 1`` in ``grastate.dat`` and ``bootstrap``
    in the marker, so the next start runs ``--wsrep-new-cluster``. Call
    ``recovery_position`` first (a seqno of -1 is refused). ``EngineError`` if the
    instance is not a member or has no Galera state. Idempotent."""
    membership = _read(paths)
    if membership is None:
        raise EngineError(f"{str(paths.root)!r} is not a Galera member")
    uuid, seqno, _ = _read_grastate(paths)
    if seqno == -1:
        raise EngineError(
            f"{GRASTATE} has no position (seqno -1): run recovery_position on this member "
            "first, and bootstrap only the most advanced one"
        )
    _write_grastate(paths, uuid=uuid, seqno=seqno, safe=True)
    _write(paths, replace(membership, bootstrap=True))


def _check_membership(membership: _Membership, spec: InstanceSpec) -> None:
    if not _CLUSTER_NAME.fullmatch(membership.cluster_name):
        raise BadRequest(
            f"Galera cluster name {membership.cluster_name!r} must be 1-32 letters, digits, "
            "'_' or '-'"
        )
    if not _PASSWORD.fullmatch(membership.sst_password):
        raise BadRequest("the state transfer password must be 12-80 letters, digits or '_.+-'")
    for member in (membership.me, *membership.members):
        member.check()
    ids = [member.instance_id for member in membership.members]
    if len(set(ids)) != len(ids):
        raise BadRequest("Galera members must have distinct instance ids")
    addresses = [member.gcomm_address for member in membership.members]
    if len(set(addresses)) != len(addresses):
        raise BadRequest("Galera members must have distinct group communication addresses")
    me = membership.me
    if me.instance_id != spec.instance_id or me.port != spec.port:
        raise BadRequest(
            f"Galera member {me.instance_id!r} on port {me.port} is not this instance "
            f"({spec.instance_id!r} on port {spec.port})"
        )
    if me not in membership.members:
        raise BadRequest(f"the members of the cluster must include {me.instance_id!r} itself")


def _ensure_sst_account(session: Session, password: str) -> None:
    """``coffer_sst@localhost`` with ``password`` and backup privileges only, replicated
    to the cluster as DDL."""
    if session.execute(q.USER_EXISTS, (SST_USER, _SST_HOST)):
        session.execute(*q.alter_password(SST_USER, _SST_HOST, password))
    else:
        session.execute(*q.create_user(SST_USER, _SST_HOST, password))
    session.execute(_SST_GRANT, (SST_USER, _SST_HOST))


def _answers(member: GaleraMember) -> bool:
    """Whether something accepts TCP connections at the member's group communication
    address (Galera's listener, if the member runs)."""
    try:
        with socket.create_connection((member.host, member.gcomm_port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _provider() -> Path:
    for path in PROVIDER_PATHS:
        if path.is_file():
            return path
    raise EngineError(
        "the Galera provider (galera-4, libgalera_smm.so) is not installed on this host"
    )


def _read(paths: InstancePaths) -> _Membership | None:
    try:
        text = (paths.root / GALERA_MARKER).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return _Membership.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"{GALERA_MARKER} of {str(paths.root)!r} is unreadable: {exc}") from None


def _write(paths: InstancePaths, membership: _Membership) -> None:
    write_private_file(
        paths.root / GALERA_MARKER, membership.to_json(), EngineUser.lookup(paths.os_user)
    )


def _read_grastate(paths: InstancePaths) -> tuple[str, int, bool]:
    """(uuid, seqno, safe_to_bootstrap) of ``grastate.dat``."""
    try:
        text = (paths.data_dir / GRASTATE).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EngineError(
            f"{str(paths.data_dir / GRASTATE)!r} does not exist: this member never ran in "
            "the cluster"
        ) from None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            fields[name.strip()] = value.strip()
    try:
        return fields["uuid"], int(fields["seqno"]), fields.get("safe_to_bootstrap") == "1"
    except (KeyError, ValueError):
        raise EngineError(f"{GRASTATE} of {str(paths.data_dir)!r} is unreadable") from None


def _write_grastate(paths: InstancePaths, *, uuid: str, seqno: int, safe: bool) -> None:
    text = (
        "# GALERA saved state\n"
        "version: 2.1\n"
        f"uuid:    {uuid}\n"
        f"seqno:   {seqno}\n"
        f"safe_to_bootstrap: {1 if safe else 0}\n"
    )
    write_private_file(paths.data_dir / GRASTATE, text, EngineUser.lookup(paths.os_user))


def _wsrep_recover(paths: InstancePaths, server: Path) -> tuple[str, int]:
    """``mariadbd --wsrep-recover`` as the instance's account: the position InnoDB
    recovery finds (it is printed to stderr, which is read here and not logged)."""
    user = EngineUser.lookup(paths.os_user)
    argv = [str(server), f"--defaults-file={config_path(paths)}", "--wsrep-recover"]
    try:
        result = subprocess.run(
            argv,
            user=user.uid,
            group=user.gid,
            extra_groups=[],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            cwd=str(paths.root),
            env=tool_env(user),
            timeout=_RECOVER_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"mariadbd --wsrep-recover failed: {exc}") from None
    match = _RECOVERED.search(result.stderr + result.stdout)
    if match is None or int(match.group(2)) < 0:
        tail = (result.stderr or result.stdout)[-500:]
        raise EngineError(f"mariadbd --wsrep-recover found no position: {tail}")
    return match.group(1), int(match.group(2))


def _describe_state(state: GaleraState) -> str:
    component = "Primary" if state.primary else "non-Primary"
    return f"{state.local_state.value} in a {component} component of {state.cluster_size}"


def _valid_host(host: str) -> bool:
    """An IPv4 address or a host name (IPv6 addresses are not supported yet)."""
    try:
        return ipaddress.ip_address(host).version == 4
    except ValueError:
        return bool(_HOST_TEXT.fullmatch(host)) and not host.replace(".", "").isdigit()
