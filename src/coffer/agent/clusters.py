"""The agent's side of clusters: make a new instance a member before its first start
(``join``, from ENSURE's ``payload["cluster"]``) and carry out one step on a member
(``run_step``, ``CommandKind.CLUSTER``). The control plane decides the membership and
orders the steps (``coffer.workflows.clusters``); the engine modules do the work
(``coffer.engines.mariadb.galera``, ``coffer.engines.redis.cluster``).

Payloads are JSON: slots travel as inclusive ranges ``[[low, high], ...]``; the cluster
password arrives in a sealed payload and goes straight to the engine's private files.
Every step is idempotent, as the engine's are: a re-delivered command is harmless.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from coffer.agent.supervisor import EngineSupervisor
from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import Engine, InstancePaths
from coffer.engines.mariadb import galera
from coffer.engines.redis.cluster import ClusterHealth, ClusterSpec, Peer, RedisClusterMember
from coffer.engines.redis.lifecycle import RedisLifecycle
from coffer.errors import BadRequest, NotImplementedByDatastore

__all__ = ["SUPERVISED_STEPS", "join", "run_step", "run_supervised_step"]

#: steps that stop or start the member's engine (``run_supervised_step``)
SUPERVISED_STEPS = frozenset({"recovery_position", "bootstrap_from", "rejoin"})

GALERA = "galera"
REDIS = "redis"


def join(engine: Engine, paths: InstancePaths, spec: InstanceSpec, cluster: dict[str, Any]) -> None:
    """Make the prepared, stopped instance a member from its next configure and start.
    Galera: ``{"kind": "galera", "name", "me", "members", "bootstrap", "password"}``
    (members as ``GaleraMember`` fields); Redis: ``{"kind": "redis", "password",
    "announce_ip", "bus_port"}`` (the last two optional). An instance that already is a
    member is left as it is (a re-delivered ENSURE)."""
    kind = cluster.get("kind")
    if kind == GALERA:
        if galera.is_member(paths):
            return
        members = [galera.GaleraMember(**member) for member in cluster["members"]]
        galera.join_cluster(
            paths,
            spec,
            cluster_name=str(cluster["name"]),
            me=galera.GaleraMember(**cluster["me"]),
            members=members,
            bootstrap=bool(cluster["bootstrap"]),
            sst_password=str(cluster["password"]),
        )
    elif kind == REDIS:
        bus_port = cluster.get("bus_port")
        _redis(engine).enable_cluster(
            paths,
            spec,
            ClusterSpec(password=str(cluster["password"]), announce_ip=cluster.get("announce_ip")),
            None if bus_port is None else int(bus_port),
        )
    else:
        raise BadRequest(f"unknown cluster kind {kind!r}")


def run_step(
    engine: Engine, paths: InstancePaths, spec: InstanceSpec, op: str, x: dict[str, Any]
) -> dict[str, Any]:
    """One step on a running member, by name; the result as a JSON-ready dict.

    Galera: ``update_members`` (``members``), ``state``. Redis: ``open_node`` (→
    ``node_id``), ``meet`` (``host``, ``port``, optional ``bus_port``), ``add_slots``
    (``slots``), ``replicate`` (``master_id``), ``state``, ``import_slots`` (``source_id``,
    ``slots``), ``migrate_slots`` (``target``: host, port, node_id; ``slots``; →
    ``moved``), ``assign_slots`` (``slots``, ``owner_id``), ``forget`` (``node_id``),
    ``tenant_users`` (→ ``lines``), ``copy_users`` (``lines``)."""
    match op:
        case "update_members":
            members = [galera.GaleraMember(**member) for member in x["members"]]
            galera.update_members(paths, spec, members)
            return {}
        case "galera_state":
            return asdict(galera.galera_state(paths))
    member = _redis(engine)
    match op:
        case "open_node":
            return {"node_id": member.open_node(paths, spec)}
        case "meet":
            bus_port = x.get("bus_port")
            member.meet(
                paths,
                spec,
                str(x["host"]),
                int(x["port"]),
                None if bus_port is None else int(bus_port),
            )
        case "add_slots":
            member.add_slots(paths, spec, _ranges(x["slots"]))
        case "replicate":
            member.replicate(paths, spec, str(x["master_id"]))
        case "redis_state":
            return _redis_state(member, paths, spec)
        case "import_slots":
            member.import_slots(paths, spec, str(x["source_id"]), _slots(x["slots"]))
        case "migrate_slots":
            target = Peer(**x["target"])
            return {"moved": member.migrate_slots(paths, spec, target, _slots(x["slots"]))}
        case "assign_slots":
            member.assign_slots(paths, spec, _slots(x["slots"]), str(x["owner_id"]))
        case "forget":
            member.forget(paths, spec, str(x["node_id"]))
        case "tenant_users":
            return {"lines": member.tenant_users(paths, spec)}
        case "copy_users":
            member.copy_users(paths, spec, [str(line) for line in x["lines"]])
        case _:
            raise BadRequest(f"unknown cluster step {op!r}")
    return {}


async def run_supervised_step(
    engine: Engine, sup: EngineSupervisor, op: str, start_timeout_s: float
) -> dict[str, Any]:
    """A Galera whole-cluster recovery step (every member stopped or crashed; see
    ``coffer.engines.mariadb.galera``): ``recovery_position`` stops the member's engine
    (the supervisor no longer restarts it) and returns its last committed position;
    ``bootstrap_from`` starts a new cluster from this member's data; ``rejoin`` starts
    the member so that it joins the running cluster. Both starts wait until Synced."""
    paths, spec = sup.paths, sup.spec
    if op == "recovery_position":
        await sup.stop()
        return asdict(await asyncio.to_thread(galera.recovery_position, paths))
    if op == "bootstrap_from":
        await asyncio.to_thread(galera.mark_safe_to_bootstrap, paths)
    await asyncio.to_thread(engine.lifecycle.configure, paths, spec)
    await sup.start(start_timeout_s)
    await asyncio.to_thread(engine.lifecycle.bootstrap, paths, spec)
    return {}


def _redis_state(
    member: RedisClusterMember, paths: InstancePaths, spec: InstanceSpec
) -> dict[str, Any]:
    state = member.cluster_state(paths, spec)
    return {
        "ok": state.health is ClusterHealth.OK,
        "known_nodes": state.known_nodes,
        "slots_ok": state.slots_ok,
        "node_id": state.node.node_id,
        "role": state.node.role.value,
        "master_id": state.node.master_id,
        "nodes": [
            {
                "node_id": node.node_id,
                "host": node.host,
                "port": node.port,
                "role": node.role.value,
                "master_id": node.master_id,
                "slots": [list(r) for r in node.slots],
                "failing": node.failing,
            }
            for node in state.nodes
        ],
    }


def _redis(engine: Engine) -> RedisClusterMember:
    if not isinstance(engine.lifecycle, RedisLifecycle):
        raise NotImplementedByDatastore("this datastore has no Redis cluster steps")
    return RedisClusterMember(engine.lifecycle)


def _ranges(data: list[list[int]]) -> list[tuple[int, int]]:
    return [(int(low), int(high)) for low, high in data]


def _slots(data: list[list[int]]) -> list[int]:
    return [slot for low, high in _ranges(data) for slot in range(low, high + 1)]
