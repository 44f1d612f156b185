"""Redis replication (the ``Replication`` seam): a replica follows its upstream with
``REPLICAOF`` and Redis copies the dataset itself (``replica_seed`` "engine").

Source
    ``open_source`` makes sure the replication ACL user (``coffer_replicator``; any name
    Coffer reserves but its admin user's) is on with the given password alone and the
    commands a replica sends (``acl.REPLICATION_COMMANDS``), then saves the ACL file so
    it survives restarts. The account is shared by every replica of the source: a new
    password replaces the old one (a replica still using the old one is refused at its
    next reconnection; its open link goes on). Redis keeps nothing per replica (its
    replication backlog is one bounded buffer for all), so ``open_source`` returns no
    facts and ``close_source`` is a no-op.

Replica
    ``follow`` records the upstream in the replication marker (root-only, 0600; see
    ``config``), which ``configure`` renders into ``redis.conf`` (``replicaof``,
    ``masteruser``, ``masterauth``; 0600, owned by the instance account) at once and
    before every start, and, on a running server, applies the same live (``CONFIG SET``
    and ``REPLICAOF``): it never asks for a restart. Redis then resyncs from the upstream:
    partially from its backlog when the replica's history allows (a promoted replica's
    old primary, with no write of its own since), else in full, replacing the replica's
    whole dataset. ``replica-read-only yes``: only the upstream's stream writes; tenant
    users and root are refused (``READONLY``). ACL users are not replicated: a replica
    keeps its own users, managed through its own ``Admin``.

Fence and promotion
    ``fence`` stops a primary's writes for a switchover: the marker then sets
    ``min-replicas-to-write`` beyond any replica count (rendered over the volume guard's,
    so it holds across restarts and configures; ``apply_parameters`` keeps it on), and
    the same is set live. Redis checks it for every write command, and for ``EXEC`` of a
    transaction holding one, so no session can write once it returns: none needs ending.
    Its position keeps growing afterwards by the upstream's pings and key expirations,
    never by a client's write. ``promote`` empties the marker, then
    ``REPLICAOF NO ONE``, clears the upstream credentials and puts the volume guard's
    setting of ``spec`` back (lifting a fence). Redis keeps the old replication id and
    offset as its second id, so replicas re-pointed to it (and the old primary) resync
    partially when their history allows.

Volume guard
    The read-only of a nearly full volume asks for more acknowledging replicas than a
    server can have (``config.NEVER_ENOUGH_REPLICAS``): attached replicas do not lift it,
    and a replica, which ignores the setting, keeps applying its upstream's stream.

State
    ``INFO replication`` over the admin socket, with a short timeout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths, ReplicaState, Upstream
from coffer.engines.redis.acl import parse_user_line, replication_rules
from coffer.engines.redis.catalog import ADMIN_USER, DEFAULT_USER, NAME_PATTERN, is_internal_user
from coffer.engines.redis.config import (
    NEVER_ENOUGH_REPLICAS,
    live_settings,
    replication_marker,
    upstream_host,
)
from coffer.engines.redis.connection import (
    Client,
    connect,
    info_fields,
    raw_info_replies,
    run,
    translate_errors,
)
from coffer.engines.redis.lifecycle import RedisLifecycle, is_fenced_instance
from coffer.errors import BadRequest

__all__ = ["RedisReplication", "replica_state"]

_STATE_TIMEOUT_S = 1.5
_LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_GUARD_SETTING = "min-replicas-to-write"
#: ``open_source``'s fact holding the source's tenant users (JSON)
_USERS_FACT = "users"


class RedisReplication:
    """The Redis ``Replication``: stateless, every call opens its own admin connection.

    Bad arguments raise ``BadRequest`` (naming the problem, never a password) before
    anything changes; Redis failures raise ``EngineError``.
    """

    follow_stops_primary = False

    def __init__(self, lifecycle: RedisLifecycle) -> None:
        self._lifecycle = lifecycle

    def open_source(
        self, paths: InstancePaths, spec: InstanceSpec, replica_id: str, user: str, password: str
    ) -> dict[str, str]:
        """Set the replication user ``user`` (replication commands only, ``password``
        alone) and ``ACL SAVE``. Idempotent; the replicas' open links are not touched.
        Returns the source's tenant users (``ACL LIST`` rules, passwords as hashes):
        ACL users are not replicated, so ``follow`` gives the replica the same ones."""
        _check_account(user)
        _check_password(password)
        with translate_errors("opening the source for replication"), connect(paths) as client:
            run(client, "ACL", "SETUSER", user, *replication_rules(password))
            run(client, "ACL", "SAVE")
            users = _tenant_users(client)
        return {_USERS_FACT: json.dumps(users, sort_keys=True)}

    def close_source(self, paths: InstancePaths, spec: InstanceSpec, replica_id: str) -> None:
        """Nothing to drop: Redis keeps nothing per replica, and the replication user
        serves the source's other replicas."""

    def follow(self, paths: InstancePaths, spec: InstanceSpec, upstream: Upstream) -> bool:
        """Record ``upstream`` in the marker and configure; if the server runs, also
        ``CONFIG SET masteruser masterauth`` and ``REPLICAOF`` at once (re-pointing it;
        the same upstream again keeps the link). Always returns False: no restart."""
        marker = replication_marker(upstream)
        host = upstream_host(upstream.host)
        if upstream.port == spec.port and host in _LOCAL_HOSTS | {spec.bind_host}:
            raise BadRequest(f"the instance cannot follow itself ({host}:{upstream.port})")
        self._lifecycle.set_replication(paths, spec, marker)
        if self._lifecycle.running_pid(paths) is None:
            return False  # the next start reads redis.conf
        with translate_errors("following the upstream"), connect(paths) as client:
            credentials = ("masteruser", upstream.user, "masterauth", upstream.password)
            run(client, "CONFIG", "SET", *credentials)
            run(client, "REPLICAOF", host, str(upstream.port))
            if _USERS_FACT in upstream.facts:
                _mirror_users(client, json.loads(upstream.facts[_USERS_FACT]))
        return False

    def promote(self, paths: InstancePaths, spec: InstanceSpec) -> None:
        """Follow nothing from now on, and accept writes at once (``REPLICAOF NO ONE``
        keeps every change received) unless the volume guard of ``spec`` refuses them.
        On a primary it only lifts a fence."""
        guard = live_settings(spec)[_GUARD_SETTING]
        self._lifecycle.set_replication(paths, spec, replication_marker())
        with translate_errors("promoting the replica"), connect(paths) as client:
            run(client, "REPLICAOF", "NO", "ONE")
            run(client, "CONFIG", "SET", "masteruser", "", "masterauth", "", _GUARD_SETTING, guard)

    def fence(self, paths: InstancePaths, spec: InstanceSpec) -> int:
        """Refuse every client write from now on, through restarts, until ``promote``;
        return ``master_repl_offset`` once fenced. On a replica (read-only already)
        nothing changes and its position is returned. Idempotent."""
        with translate_errors("fencing the primary"), connect(paths) as client:
            raw_info_replies(client)
            before = info_fields(client, "replication")
            if before.get("role") == "slave":
                return replica_state(before).position
            self._lifecycle.set_replication(paths, spec, replication_marker(fenced=True))
            run(client, "CONFIG", "SET", _GUARD_SETTING, str(NEVER_ENOUGH_REPLICAS))
            return replica_state(info_fields(client, "replication")).position

    def state(self, paths: InstancePaths, spec: InstanceSpec) -> ReplicaState:
        """``INFO replication`` of the running server (see ``replica_state``)."""
        with (
            translate_errors("reading the replication state"),
            connect(paths, timeout_s=_STATE_TIMEOUT_S) as client,
        ):
            raw_info_replies(client)
            found = info_fields(client, "replication")
        return replica_state(found, fenced=is_fenced_instance(paths))


def replica_state(info: Mapping[str, str], *, fenced: bool = False) -> ReplicaState:
    """The ``ReplicaState`` of ``INFO replication`` fields.

    A master is "primary" at ``master_repl_offset`` (``fenced``: its writes are refused
    until promoted). A replica is "replica" at ``slave_repl_offset`` (what it has
    applied), streaming while its link is up and no full sync runs; its lag is
    ``master_last_io_seconds_ago`` (the upstream pings every second, so a healthy link
    shows 0-1 s), unknown while the link is down.
    """
    if info.get("role") != "slave":
        replicas = info.get("connected_slaves", "0")
        fence = ", fenced: writes refused until promoted" if fenced else ""
        return ReplicaState(
            role="primary",
            position=_int(info.get("master_repl_offset")),
            detail=f"primary with {replicas} replica(s) connected{fence}",
        )
    link_up = info.get("master_link_status") == "up"
    syncing = info.get("master_sync_in_progress") == "1"
    last_io = _int(info.get("master_last_io_seconds_ago"), default=-1)
    detail = f"following {info.get('master_host')}:{info.get('master_port')}"
    if syncing:
        detail += ", full sync in progress"
    elif not link_up:
        down = info.get("master_link_down_since_seconds")
        detail += ", link down" + (f" for {down} s" if down not in (None, "-1") else "")
    return ReplicaState(
        role="replica",
        streaming=link_up and not syncing,
        lag_s=float(last_io) if link_up and last_io >= 0 else None,
        position=_int(info.get("slave_repl_offset")),
        detail=detail,
    )


def _tenant_users(client: Client) -> dict[str, list[str]]:
    """The tenant (and root) users of the server, ``name -> ACL rules``."""
    users: dict[str, list[str]] = {}
    for line in run(client, "ACL", "LIST"):
        parsed = parse_user_line(str(line))
        if parsed is not None and not is_internal_user(parsed[0]) and parsed[0] != DEFAULT_USER:
            users[parsed[0]] = parsed[1]
    return users


def _mirror_users(client: Client, wanted: dict[str, list[str]]) -> None:
    """Make the replica's tenant users those of its upstream (``ACL SAVE``d)."""
    current = _tenant_users(client)
    for name in set(current) - set(wanted):
        run(client, "ACL", "DELUSER", name)
    for name, rules in wanted.items():
        if not NAME_PATTERN.fullmatch(name) or is_internal_user(name) or name == DEFAULT_USER:
            raise BadRequest(f"the upstream reported an unexpected user {name!r}")
        if current.get(name) != rules:
            run(client, "ACL", "SETUSER", name, "reset", *rules)
    run(client, "ACL", "SAVE")


def _int(value: str | None, *, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _check_account(user: str) -> None:
    if not NAME_PATTERN.fullmatch(user) or not is_internal_user(user) or user == ADMIN_USER:
        raise BadRequest(
            f"{user!r} cannot be the replication account: use a name Coffer reserves "
            f"(starting with 'coffer'), other than {ADMIN_USER!r}"
        )


def _check_password(password: str) -> None:
    """Refuse what a replica could not put in ``masterauth``."""
    if not password or any(ord(char) < 0x20 or ord(char) == 0x7F for char in password):
        raise BadRequest("the replication password must be non-empty, without control characters")
