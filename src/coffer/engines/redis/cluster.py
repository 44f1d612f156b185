"""Redis Cluster, engine side: one member's steps, which the control plane orders.

A Redis Cluster is N masters, each with replicas, every one an ordinary Coffer Redis
instance (own OS account, port, volume). The control plane decides membership and the
order of steps; this module carries out one step on one local member through its admin
socket (redis-py, never ``redis-cli``), and plans slot moves (``plan_rebalance``, pure).

Forming a cluster
    ``enable_cluster`` on each stopped member (records the cluster marker, see
    ``config``; ``configure`` then renders ``cluster-enabled`` and the rest), start and
    ``bootstrap`` as usual, ``open_node`` (internal accounts; returns the node id), then
    ``meet`` every member from one of them, ``add_slots`` on each master (all 16384 slots
    once), and ``replicate`` on each replica once it knows its master (gossip takes about
    a second: poll ``cluster_state``). The cluster bus listens on ``bus_port`` when
    ``enable_cluster`` is given one (``cluster-port``; the control plane leases it from
    the host's range like the client port), else on port + 10000, which must be free
    too and, to be safe from outgoing connections, below the ephemeral range
    32768-60999. ``meet`` then names the other node's bus port.

Internal accounts (``open_node``; the same password on every member, ``ClusterSpec``)
    ``coffer_replicator`` — a replica authenticates to its master with it (rendered
    ``masteruser``/``masterauth``): any master may fail over to any of its replicas, so
    every member has it. ``coffer_migrator`` — ``MIGRATE`` from another member logs in
    as it to restore keys into an importing slot (``RESTORE-ASKING`` and what MIGRATE
    sends around it; no other command, no channel). The cluster bus itself has no
    authentication in Redis 7.0: keep it on a private network.

Tenant users
    ACL users are per node and never travel over the cluster bus or replication. The
    control plane therefore makes every account change (``Admin``) on every member,
    masters and replicas alike, as it does for replicas of a standalone instance
    (``Catalog.accounts_replicate`` is False), and gives a new member the existing users
    before it serves (``Admin.create_users`` with the stored users). The tenant set
    already allows what cluster clients need (``CLUSTER SLOTS/SHARDS/NODES``,
    ``ASKING``, ``READONLY``); ``MIGRATE`` and slot administration stay closed.

Moving slots (grow, shrink, rebalance)
    For a move of ``slots`` from S to T: ``import_slots`` on T (``SETSLOT IMPORTING``),
    ``migrate_slots`` on S (``SETSLOT MIGRATING``, then ``MIGRATE ... REPLACE AUTH2`` of
    every key, in batches, as ``coffer_migrator``), then ``assign_slots`` naming T as
    owner on T first, then S, then every other master (replicas learn it by gossip).
    Meanwhile clients are redirected with ``ASK``, so no write is lost. A new master
    takes part once its own ``cluster_state`` is ok (Redis holds a master that just
    joined in "fail" for up to the node timeout, and refuses keys until then). Every step is
    idempotent and may be repeated after a failure. A master left without slots is
    removed with ``forget`` on every remaining member (within 60 s of each other, or the
    gossip re-introduces it), then stopped.

Errors: ``BadRequest`` for bad arguments (before anything changes), ``EngineError`` for
what Redis refuses or cannot do (its message, never a password).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths
from coffer.engines.host import EngineUser, write_private_file
from coffer.engines.redis.acl import parse_user_line, password_hash, replication_rules
from coffer.engines.redis.catalog import ADMIN_USER, REPLICATION_USER, is_internal_user
from coffer.engines.redis.config import (
    CLUSTER_BUS_OFFSET,
    cluster_marker,
    cluster_path,
    cluster_settings,
    replication_path,
    replication_settings,
    socket_path,
)
from coffer.engines.redis.connection import (
    connect,
    parse_info,
    read_admin_password,
    run,
    translate_errors,
)
from coffer.errors import BadRequest, EngineError

if TYPE_CHECKING:
    from coffer.engines.redis.lifecycle import RedisLifecycle

__all__ = [
    "MIGRATION_USER",
    "SLOT_COUNT",
    "ClusterHealth",
    "ClusterNode",
    "ClusterSpec",
    "ClusterState",
    "NodeRole",
    "Peer",
    "RedisClusterMember",
    "SlotMove",
    "parse_nodes",
    "plan_rebalance",
    "slot_ranges",
]

SLOT_COUNT = 16384
#: ACL user ``MIGRATE`` logs in as on the importing member
MIGRATION_USER = "coffer_migrator"
#: what a Redis 7.0 ``MIGRATE`` sends the target after ``AUTH``, in cluster mode
MIGRATION_COMMANDS: tuple[str, ...] = ("+select", "+restore-asking", "+ping")
_NODE_ID = re.compile(r"[0-9a-f]{40}")
_MIGRATE_TIMEOUT_MS = 10_000
_KEYS_PER_BATCH = 100
_STATE_TIMEOUT_S = 2.0


class ClusterHealth(StrEnum):
    OK = "ok"
    FAIL = "fail"


class NodeRole(StrEnum):
    MASTER = "master"
    REPLICA = "replica"


@dataclass(frozen=True)
class ClusterSpec:
    """What ``enable_cluster`` records, the same for every member of one cluster."""

    #: password of the internal accounts (``coffer_replicator``, ``coffer_migrator``)
    password: str
    #: ``cluster-node-timeout``: a master unreachable this long is failed over
    node_timeout_ms: int = 2000
    #: the address other members and clients reach this node at (``cluster-announce-ip``);
    #: None: the address the other side sees
    announce_ip: str | None = None


@dataclass(frozen=True)
class Peer:
    """Another member as this one reaches it."""

    host: str
    port: int
    node_id: str


@dataclass(frozen=True)
class ClusterNode:
    """One line of ``CLUSTER NODES``: a node as the asking member sees it."""

    node_id: str
    host: str
    port: int
    role: NodeRole
    #: the master a replica follows (None for a master)
    master_id: str | None
    #: slots the node serves, as inclusive ranges
    slots: tuple[tuple[int, int], ...]
    myself: bool
    #: flagged ``fail`` (agreed by the masters) or ``fail?`` (suspected by this member)
    failing: bool


@dataclass(frozen=True)
class ClusterState:
    """``CLUSTER INFO`` and ``CLUSTER NODES`` of one member."""

    health: ClusterHealth
    slots_assigned: int
    slots_ok: int
    known_nodes: int
    node: ClusterNode
    nodes: tuple[ClusterNode, ...]

    def owners(self) -> dict[str, list[int]]:
        """Every master's slots (``node id -> slots``), as ``plan_rebalance`` takes them."""
        return {
            node.node_id: [s for low, high in node.slots for s in range(low, high + 1)]
            for node in self.nodes
            if node.role is NodeRole.MASTER
        }


@dataclass(frozen=True)
class SlotMove:
    """Slots to move from one master to another."""

    source: str
    target: str
    slots: tuple[int, ...]


class RedisClusterMember:
    """Cluster steps on one local member; stateless, each call opens its own admin
    connection. All but ``enable_cluster`` need the server running in cluster mode."""

    def __init__(self, lifecycle: RedisLifecycle) -> None:
        self._lifecycle = lifecycle

    def enable_cluster(
        self,
        paths: InstancePaths,
        spec: InstanceSpec,
        cluster: ClusterSpec,
        bus_port: int | None = None,
    ) -> bool:
        """Record the cluster marker (root-only, 0600) and ``configure``: from the next
        start on, the server is a cluster node (``data/nodes.conf`` keeps its identity)
        whose bus listens on ``bus_port`` (None: port + 10000). Returns True if a server
        runs now without cluster mode (it needs a restart). ``BadRequest``, changing
        nothing, for an instance that follows an upstream, a bus port that is the client
        port or does not exist, or a bad ``cluster``."""
        if bus_port is None and spec.port + CLUSTER_BUS_OFFSET > 65535:
            raise BadRequest(
                f"port {spec.port} leaves no cluster bus port (port + {CLUSTER_BUS_OFFSET} "
                "must be at most 65535); give the member a bus port"
            )
        if bus_port == spec.port:
            raise BadRequest(f"the cluster bus port {bus_port} is the client port")
        if "replicaof" in replication_settings(_read(replication_path(paths))):
            raise BadRequest("a replica of a standalone instance cannot join a cluster")
        marker = cluster_marker(
            user=REPLICATION_USER,
            password=cluster.password,
            node_timeout_ms=cluster.node_timeout_ms,
            announce_ip=cluster.announce_ip,
            bus_port=bus_port,
        )
        write_private_file(cluster_path(paths), marker, _agent_account())
        self._lifecycle.configure(paths, spec)
        if self._lifecycle.running_pid(paths) is None:
            return False
        with translate_errors("reading the cluster mode"), connect(paths) as client:
            return str(run(client, "CONFIG", "GET", "cluster-enabled")[1]) != "yes"

    def open_node(self, paths: InstancePaths, spec: InstanceSpec) -> str:
        """Set the internal accounts from the marker (``ACL SAVE``d) and return this
        node's id. Idempotent; call after ``bootstrap``."""
        password = _cluster_password(paths)
        migration = ["reset", "on", f"#{password_hash(password)}", "~*", *MIGRATION_COMMANDS]
        with translate_errors("opening the cluster node"), connect(paths) as client:
            run(client, "ACL", "SETUSER", REPLICATION_USER, *replication_rules(password))
            run(client, "ACL", "SETUSER", MIGRATION_USER, *migration)
            run(client, "ACL", "SAVE")
            return str(run(client, "CLUSTER", "MYID"))

    def node_id(self, paths: InstancePaths, spec: InstanceSpec) -> str:
        """This node's id (40 hex digits), fixed for the life of its ``nodes.conf``."""
        with translate_errors("reading the node id"), connect(paths) as client:
            return str(run(client, "CLUSTER", "MYID"))

    def meet(
        self,
        paths: InstancePaths,
        spec: InstanceSpec,
        host: str,
        port: int,
        bus_port: int | None = None,
    ) -> None:
        """``CLUSTER MEET``: start the handshake with the node at ``host``:``port`` (an IP
        address; its bus at ``bus_port``, None: port + 10000). Returns at once; the node
        shows up in ``cluster_state`` when the handshake completes. Idempotent."""
        address = _ip(host)
        _check_port(port)
        _check_port(port + CLUSTER_BUS_OFFSET if bus_port is None else bus_port, "bus port")
        bus = [] if bus_port is None else [str(bus_port)]
        with translate_errors(f"meeting {address}:{port}"), connect(paths) as client:
            run(client, "CLUSTER", "MEET", address, str(port), *bus)

    def add_slots(
        self, paths: InstancePaths, spec: InstanceSpec, ranges: Sequence[tuple[int, int]]
    ) -> None:
        """``CLUSTER ADDSLOTSRANGE`` of the inclusive ``ranges`` not served yet by this
        node (so a repeat is a no-op). For forming: a slot another node serves is
        refused by Redis (``EngineError``); move those with ``migrate_slots``."""
        wanted = {slot for low, high in ranges for slot in _slot_range(low, high)}
        with translate_errors("adding slots"), connect(paths) as client:
            mine = _myself(_nodes(client))
            owned = {s for low, high in mine.slots for s in range(low, high + 1)}
            missing = slot_ranges(wanted - owned)
            if missing:
                run(client, "CLUSTER", "ADDSLOTSRANGE", *(str(v) for r in missing for v in r))

    def replicate(self, paths: InstancePaths, spec: InstanceSpec, master_node_id: str) -> None:
        """``CLUSTER REPLICATE``: follow ``master_node_id`` (which this node must know,
        see ``cluster_state``). The node must hold no slots and no keys. Idempotent."""
        _check_node_id(master_node_id)
        with translate_errors("replicating the master"), connect(paths) as client:
            nodes = _nodes(client)
            if not any(node.node_id == master_node_id for node in nodes):
                raise EngineError(
                    f"this node does not know master {master_node_id} yet: meet it and wait"
                )
            if _myself(nodes).master_id != master_node_id:
                run(client, "CLUSTER", "REPLICATE", master_node_id)

    def cluster_state(self, paths: InstancePaths, spec: InstanceSpec) -> ClusterState:
        """This member's view of the cluster (``CLUSTER INFO`` and ``CLUSTER NODES``)."""
        with (
            translate_errors("reading the cluster state"),
            connect(paths, timeout_s=_STATE_TIMEOUT_S) as client,
        ):
            info = parse_info(str(run(client, "CLUSTER", "INFO")))
            nodes = _nodes(client)
        return ClusterState(
            health=ClusterHealth.OK if info.get("cluster_state") == "ok" else ClusterHealth.FAIL,
            slots_assigned=int(info.get("cluster_slots_assigned", "0")),
            slots_ok=int(info.get("cluster_slots_ok", "0")),
            known_nodes=int(info.get("cluster_known_nodes", "0")),
            node=_myself(nodes),
            nodes=nodes,
        )

    def import_slots(
        self, paths: InstancePaths, spec: InstanceSpec, source_node_id: str, slots: Iterable[int]
    ) -> None:
        """On the target of a move: ``CLUSTER SETSLOT <slot> IMPORTING <source>`` for each
        of ``slots`` this node does not serve already (a repeat is a no-op)."""
        _check_node_id(source_node_id)
        wanted = _slots(slots)
        with translate_errors("importing slots"), connect(paths) as client:
            mine = _myself(_nodes(client))
            owned = {s for low, high in mine.slots for s in range(low, high + 1)}
            _each_slot(client, [s for s in wanted if s not in owned], "IMPORTING", source_node_id)

    def migrate_slots(
        self, paths: InstancePaths, spec: InstanceSpec, target: Peer, slots: Iterable[int]
    ) -> int:
        """On the source of a move (the target has run ``import_slots``): mark each of
        ``slots`` ``MIGRATING`` to ``target``, then ``MIGRATE`` all its keys there in
        batches (``REPLACE``: the source's copy is the current one; ``AUTH2`` as
        ``coffer_migrator``). Returns the number of keys moved. The slots stay migrating
        until ``assign_slots``. Slots this node no longer serves are skipped, so a repeat
        (also after ``assign_slots``) is a no-op. May block for as long as the keys take."""
        _check_node_id(target.node_id)
        address = _ip(target.host)
        _check_port(target.port)
        password = _cluster_password(paths)
        moved = 0
        with translate_errors(f"migrating slots to {address}:{target.port}"):
            with connect(paths) as client:
                mine = _myself(_nodes(client))
                owned = {s for low, high in mine.slots for s in range(low, high + 1)}
                wanted = [slot for slot in _slots(slots) if slot in owned]
                _each_slot(client, wanted, "MIGRATING", target.node_id)
            with _binary_client(paths) as raw:
                for slot in wanted:
                    moved += _migrate_keys(raw, slot, address, target.port, password)
        return moved

    def assign_slots(
        self, paths: InstancePaths, spec: InstanceSpec, slots: Iterable[int], owner_node_id: str
    ) -> None:
        """``CLUSTER SETSLOT <slot> NODE <owner>`` for each of ``slots`` (a master only;
        the owner first, then the source, then the other masters). Ends the import or
        migration of these slots; Redis refuses it on a source still holding keys."""
        _check_node_id(owner_node_id)
        with translate_errors("assigning slots"), connect(paths) as client:
            _each_slot(client, _slots(slots), "NODE", owner_node_id)

    def tenant_users(self, paths: InstancePaths, spec: InstanceSpec) -> list[str]:
        """The ``ACL LIST`` lines of every user but Coffer's own and ``default``: what a
        new member gets (``copy_users``) so that clients log in on every member alike.
        The lines hold password hashes, never passwords."""
        with translate_errors("listing the users"), connect(paths) as client:
            lines = [str(line) for line in run(client, "ACL", "LIST")]
        return [line for line in lines if _tenant_user(line)]

    def copy_users(self, paths: InstancePaths, spec: InstanceSpec, lines: Sequence[str]) -> None:
        """Make each user of ``lines`` (``tenant_users`` of another member) exactly as it
        is there, and ``ACL SAVE``. ``BadRequest``, changing nothing, for a line that is no
        tenant user. Idempotent."""
        users = [parse_user_line(line) for line in lines]
        if not all(_tenant_user(line) for line in lines):
            raise BadRequest("only tenant users can be copied between cluster members")
        with translate_errors("copying the users"), connect(paths) as client:
            for user in users:
                assert user is not None
                run(client, "ACL", "SETUSER", user[0], "reset", *user[1])
            run(client, "ACL", "SAVE")

    def forget(self, paths: InstancePaths, spec: InstanceSpec, node_id: str) -> None:
        """``CLUSTER FORGET``: drop ``node_id`` from this node's view for 60 s (run it on
        every remaining member within that time). Unknown nodes are already forgotten."""
        _check_node_id(node_id)
        with translate_errors(f"forgetting node {node_id}"), connect(paths) as client:
            if any(node.node_id == node_id for node in _nodes(client)):
                run(client, "CLUSTER", "FORGET", node_id)


def plan_rebalance(current: Mapping[str, Iterable[int]], masters: Sequence[str]) -> list[SlotMove]:
    """The moves that spread all 16384 slots evenly over ``masters``.

    ``current`` maps every master serving slots now to its slots (together exactly 0..16383,
    once each); ``masters`` is the wanted set (new ones may be absent from ``current``;
    masters of ``current`` not in it give all their slots away). Each wanted master ends
    with 16384 // n or one more slot (the extra ones go to those holding most now);
    slots stay where they are as far as the quotas allow, so the number of slots moved
    is the least possible; donors give their highest slots. Deterministic. Pure.
    ``BadRequest`` for an empty or repeated master set or slots not covered exactly once.
    """
    owned = _check_plan_input(current, masters)
    wanted = list(dict.fromkeys(masters))
    order = sorted(wanted, key=lambda node: (-len(owned.get(node, [])), node))
    base, extra = divmod(SLOT_COUNT, len(wanted))
    quota = {node: base + (1 if rank < extra else 0) for rank, node in enumerate(order)}
    surplus: list[tuple[str, int]] = []
    for node in sorted(owned):
        keep = quota.get(node, 0)
        surplus.extend((node, slot) for slot in sorted(owned[node])[keep:])
    moves: dict[tuple[str, str], list[int]] = {}
    position = 0
    for node in sorted(wanted):
        for _ in range(quota[node] - min(quota[node], len(owned.get(node, [])))):
            source, slot = surplus[position]
            position += 1
            moves.setdefault((source, node), []).append(slot)
    return [SlotMove(source=s, target=t, slots=tuple(v)) for (s, t), v in moves.items()]


def slot_ranges(slots: Iterable[int]) -> list[tuple[int, int]]:
    """``slots`` as sorted inclusive ranges: ``[0, 1, 2, 7]`` → ``[(0, 2), (7, 7)]``."""
    ranges: list[tuple[int, int]] = []
    for slot in sorted(set(slots)):
        if ranges and ranges[-1][1] == slot - 1:
            ranges[-1] = (ranges[-1][0], slot)
        else:
            ranges.append((slot, slot))
    return ranges


def parse_nodes(text: str) -> tuple[ClusterNode, ...]:
    """The nodes of a ``CLUSTER NODES`` reply (migration markers ``[slot->-id]`` skipped)."""
    nodes: list[ClusterNode] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@", 1)[0]
        host, _, port = address.rpartition(":")
        flags = set(fields[2].split(","))
        slots = [_parse_slot_field(field) for field in fields[8:] if not field.startswith("[")]
        nodes.append(
            ClusterNode(
                node_id=fields[0],
                host=host,
                port=int(port) if port.isdigit() else 0,
                role=NodeRole.REPLICA if "slave" in flags else NodeRole.MASTER,
                master_id=None if fields[3] == "-" else fields[3],
                slots=tuple(slots),
                myself="myself" in flags,
                failing=bool(flags & {"fail", "fail?"}),
            )
        )
    return tuple(nodes)


def _parse_slot_field(field: str) -> tuple[int, int]:
    low, _, high = field.partition("-")
    return int(low), int(high or low)


def _tenant_user(line: str) -> bool:
    user = parse_user_line(line)
    return user is not None and user[0] != "default" and not is_internal_user(user[0])


def _nodes(client: redis.Redis) -> tuple[ClusterNode, ...]:
    return parse_nodes(str(run(client, "CLUSTER", "NODES")))


def _myself(nodes: Sequence[ClusterNode]) -> ClusterNode:
    for node in nodes:
        if node.myself:
            return node
    raise EngineError("CLUSTER NODES did not list this node")


def _each_slot(client: redis.Redis, slots: Sequence[int], state: str, node_id: str) -> None:
    """``CLUSTER SETSLOT <slot> <state> <node_id>`` for every slot, pipelined."""
    pipe = client.pipeline(transaction=False)
    for slot in slots:
        pipe.execute_command("CLUSTER", "SETSLOT", str(slot), state, node_id)  # type: ignore[no-untyped-call]
    pipe.execute()


def _migrate_keys(client: redis.Redis, slot: int, host: str, port: int, password: str) -> int:
    """Move every key of ``slot`` to ``host``:``port``; the number moved."""
    moved = 0
    while True:
        keys: Any = client.execute_command(  # type: ignore[no-untyped-call]
            "CLUSTER", "GETKEYSINSLOT", str(slot), str(_KEYS_PER_BATCH)
        )
        if not keys:
            return moved
        client.execute_command(  # type: ignore[no-untyped-call]
            "MIGRATE", host, str(port), "", "0", str(_MIGRATE_TIMEOUT_MS), "REPLACE",
            "AUTH2", MIGRATION_USER, password, "KEYS", *keys,
        )  # fmt: skip
        moved += len(keys)


def _binary_client(paths: InstancePaths) -> redis.Redis:
    """An admin client of the unix socket that keeps replies as bytes: key names are
    any bytes, not necessarily UTF-8 (``connection.connect`` decodes)."""
    return redis.Redis(
        unix_socket_path=str(socket_path(paths)),
        username=ADMIN_USER,
        password=read_admin_password(paths),
        socket_timeout=_MIGRATE_TIMEOUT_MS / 1000 + 5,
        socket_connect_timeout=5,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
        protocol=2,
        client_name="coffer-agent",
        driver_info=None,
    )


def _cluster_password(paths: InstancePaths) -> str:
    settings = cluster_settings(_read(cluster_path(paths)), paths)
    if "masterauth" not in settings:
        raise EngineError(
            f"the Redis instance in {str(paths.root)!r} is not a cluster node: enable the "
            "cluster first"
        )
    return str(settings["masterauth"])


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _check_plan_input(
    current: Mapping[str, Iterable[int]], masters: Sequence[str]
) -> dict[str, list[int]]:
    if not masters:
        raise BadRequest("a cluster needs at least one master")
    if len(set(masters)) != len(masters):
        raise BadRequest("the wanted masters name a node twice")
    owned = {node: list(slots) for node, slots in current.items()}
    every = [slot for slots in owned.values() for slot in slots]
    if len(every) != SLOT_COUNT or set(every) != set(range(SLOT_COUNT)):
        raise BadRequest(
            f"the current masters must serve each of the {SLOT_COUNT} slots exactly once "
            f"(they serve {len(set(every))} distinct slots in {len(every)} assignments)"
        )
    return owned


def _slots(slots: Iterable[int]) -> list[int]:
    found = sorted(set(slots))
    if found and not 0 <= found[0] <= found[-1] < SLOT_COUNT:
        raise BadRequest(f"slots must lie in 0-{SLOT_COUNT - 1}")
    return found


def _slot_range(low: int, high: int) -> range:
    if not 0 <= low <= high < SLOT_COUNT:
        raise BadRequest(f"slot range {low}-{high} is not within 0-{SLOT_COUNT - 1}")
    return range(low, high + 1)


def _check_node_id(node_id: str) -> None:
    if not _NODE_ID.fullmatch(node_id):
        raise BadRequest(f"{node_id!r} is not a Redis Cluster node id (40 hex digits)")


def _check_port(port: int, what: str = "port") -> None:
    if not 1 <= port <= 65535:
        raise BadRequest(f"{what} {port} is outside 1-65535")


def _ip(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise BadRequest(f"cluster peer {host!r} must be an IP address") from None


def _agent_account() -> EngineUser:
    """The agent's own account: what owns the instance's root-only files."""
    return EngineUser(name="agent", uid=os.geteuid(), gid=os.getegid(), home="/")
