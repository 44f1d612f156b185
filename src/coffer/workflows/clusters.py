"""Cluster workflows: create, grow, shrink, restart, delete (Galera and Redis Cluster).

Each owns the cluster's task (``ClusterTask``) and the tasks of the members it creates,
restarts or removes, and ends with the cluster's task back to NONE: on failure with a
fault on the cluster, and on every member it still owned (an error task for members
being created or removed). Every wait is bounded by the cluster's task deadline.

Galera (``coffer.engines.mariadb.galera``): the first member bootstraps, the others join
one at a time by state transfer (a joiner takes its donor out of service while it
copies); grow tells the running members the new address list first, then joins the new
ones; shrink stops the removed members (a clean shutdown leaves the cluster) and then
tells the rest. Redis Cluster (``coffer.engines.redis.cluster``): members start in
cluster mode, meet, masters take their share of the 16384 slots, replicas follow their
masters; grow meets the new members and rebalances the slots; shrink first moves every
slot off the removed masters, then stops them and makes the rest forget them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from dbos import DBOS, SetWorkflowID
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coffer.clock import utcnow
from coffer.contracts.agent_v1 import CommandKind
from coffer.db.models import Cluster, Host, Instance
from coffer.domain.states import ClusterTask, TaskStatus
from coffer.engines.redis.cluster import SLOT_COUNT, plan_rebalance, slot_ranges
from coffer.errors import CofferError, EngineError
from coffer.services import events, records
from coffer.services.cluster_records import ClusterKind, load, membership
from coffer.services.commands import CommandBus
from coffer.workflows.observe import observed_workflow
from coffer.workflows.runtime import current
from coffer.workflows.steps import (
    RECORDING_STEP,
    describe,
    fail_task,
    finish_task,
    mark_deleted,
    send_command,
)

__all__ = [
    "cancel",
    "create_cluster",
    "delete_cluster",
    "grow_cluster",
    "restart_cluster",
    "shrink_cluster",
    "start",
]

#: how often a wait for the cluster's state asks the members
_POLL_S = 0.5
#: how long a member is given to say whether it is in a Primary component
_STATE_ASK_S = 10.0


def start(workflow: Callable[[str, str], None], workflow_id: str, cluster_id: str) -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(workflow, workflow_id, cluster_id)


def cancel(workflow_id: str) -> None:
    DBOS.cancel_workflow(workflow_id)


# -- workflows -----------------------------------------------------------------------------


@observed_workflow(name="cluster.create")
def create_cluster(wid: str, cluster_id: str) -> None:
    try:
        new = owned_members(cluster_id, wid)
        if cluster_kind(cluster_id) == ClusterKind.GALERA.value:
            for index, instance_id in enumerate(new):
                _galera_join(wid, cluster_id, instance_id, bootstrap=index == 0)
        else:
            _redis_add(wid, cluster_id, new, forming=True)
        end_cluster(cluster_id, wid)
    except Exception as exc:
        _fail(cluster_id, wid, "create", exc, TaskStatus.BUILDING_ERROR)


@observed_workflow(name="cluster.grow")
def grow_cluster(wid: str, cluster_id: str) -> None:
    try:
        new = owned_members(cluster_id, wid)
        if cluster_kind(cluster_id) == ClusterKind.GALERA.value:
            # the running members learn every address first (used when they rejoin)
            _galera_update_members(wid, cluster_id, "grow")
            for instance_id in new:
                _galera_join(wid, cluster_id, instance_id, bootstrap=False)
        else:
            sync_redis_roles(cluster_id)
            _redis_add(wid, cluster_id, new, forming=False)
        end_cluster(cluster_id, wid)
    except Exception as exc:
        _fail(cluster_id, wid, "grow", exc, TaskStatus.BUILDING_ERROR)


@observed_workflow(name="cluster.shrink")
def shrink_cluster(wid: str, cluster_id: str) -> None:
    try:
        gone = owned_members(cluster_id, wid)
        galera = cluster_kind(cluster_id) == ClusterKind.GALERA.value
        if not galera:
            sync_redis_roles(cluster_id)
            _redis_rebalance(wid, cluster_id, without=gone)
        for instance_id in gone:
            _remove(wid, cluster_id, instance_id)
        if galera:
            _galera_update_members(wid, cluster_id, "shrink")
        else:
            for node_id in removed_nodes(gone):
                for member in live_members(cluster_id):
                    tag = f"forget-{node_id[:12]}-{member}"
                    _call(wid, tag, cluster_id, member, "forget", {"node_id": node_id})
        end_cluster(cluster_id, wid)
    except Exception as exc:
        _fail(cluster_id, wid, "shrink", exc, TaskStatus.DELETING_ERROR)


@observed_workflow(name="cluster.restart")
def restart_cluster(wid: str, cluster_id: str) -> None:
    """One member at a time, each back in the cluster before the next goes down; a
    Galera cluster none of whose members is in a Primary component (every member
    stopped or crashed) is recovered instead (``_galera_recover``)."""
    try:
        members = owned_members(cluster_id, wid)
        galera = cluster_kind(cluster_id) == ClusterKind.GALERA.value
        if galera and not any_primary(cluster_id, members):
            _galera_recover(wid, cluster_id, members)
        else:
            for instance_id in members:
                cid = f"{wid}:restart-{instance_id}"
                send_command(cid, instance_id, CommandKind.RESTART.value, {})
                observed = await_on_cluster(cid, cluster_id)
                wait_healthy(cluster_id)
                finish_task(instance_id, wid, observed=observed)
            if not galera:  # a master down for its restart may have been failed over
                sync_redis_roles(cluster_id)
        end_cluster(cluster_id, wid)
    except Exception as exc:
        _fail(cluster_id, wid, "restart", exc, TaskStatus.NONE)


@observed_workflow(name="cluster.delete")
def delete_cluster(wid: str, cluster_id: str) -> None:
    try:
        members = owned_members(cluster_id, wid)
        for instance_id in members:
            send_command(f"{wid}:remove-{instance_id}", instance_id, CommandKind.DELETE.value, {})
        for instance_id in members:
            await_on_cluster(f"{wid}:remove-{instance_id}", cluster_id)
            mark_deleted(instance_id, wid)
        mark_cluster_deleted(cluster_id, wid)
    except Exception as exc:
        _fail(cluster_id, wid, "delete", exc, TaskStatus.DELETING_ERROR)


# -- Galera --------------------------------------------------------------------------------


def _galera_join(wid: str, cluster_id: str, instance_id: str, *, bootstrap: bool) -> None:
    """Create one member: it starts the cluster, or joins it by state transfer."""
    cid = f"{wid}:ensure-{instance_id}"
    extras = galera_extras(cluster_id, instance_id, bootstrap)
    send_command(cid, instance_id, CommandKind.ENSURE.value, {}, extras)
    observed = await_on_cluster(cid, cluster_id)
    finish_task(instance_id, wid, observed=observed)


def _galera_update_members(wid: str, cluster_id: str, tag: str) -> None:
    members = galera_members(cluster_id)
    for member in live_members(cluster_id, True):
        _call(wid, f"{tag}-members-{member}", cluster_id, member, "update_members", members)


def _galera_recover(wid: str, cluster_id: str, members: list[str]) -> None:
    """Whole-cluster recovery: stop every member and read its last committed position,
    start a new cluster from the most advanced one (nothing committed is lost), then
    start the others, which rejoin by IST or SST."""
    positions = [
        _call(wid, f"position-{member}", cluster_id, member, "recovery_position", {})
        for member in members
    ]
    first = members[most_advanced(positions)]
    _call(wid, f"bootstrap-{first}", cluster_id, first, "bootstrap_from", {})
    finish_task(first, wid)
    for member in members:
        if member != first:
            _call(wid, f"rejoin-{member}", cluster_id, member, "rejoin", {})
            finish_task(member, wid)
    wait_healthy(cluster_id)


def most_advanced(positions: list[dict[str, Any]]) -> int:
    """The index of the member to bootstrap from: the highest seqno, then one Galera
    marked safe to bootstrap, then the first."""
    return max(
        range(len(positions)),
        key=lambda i: (positions[i]["seqno"], positions[i]["safe_to_bootstrap"], -i),
    )


@DBOS.step()
def any_primary(cluster_id: str, members: list[str]) -> bool:
    """Whether a member answers and is in a Primary component."""
    for member in members:
        try:
            if _ask(member, cluster_id, "galera_state", {}, timeout_s=_STATE_ASK_S)["primary"]:
                return True
        except CofferError:
            continue
    return False


@DBOS.step()
def galera_extras(cluster_id: str, instance_id: str, bootstrap: bool) -> str:
    """The member's ENSURE extras, sealed (they hold the state transfer password)."""
    rt = current()
    with rt.sessions() as s:
        rec = load(s, cluster_id, None)
        password = rt.sealer.open(rec.cluster.secret_sealed).decode()
    members = _galera_members(cluster_id)["members"]
    me = next(member for member in members if member["instance_id"] == instance_id)
    cluster = {
        "kind": ClusterKind.GALERA.value,
        "name": f"coffer-{cluster_id[:8]}",
        "me": me,
        "members": members,
        "bootstrap": bootstrap,
        "password": password,
    }
    return rt.sealer.seal(json.dumps({"cluster": cluster}).encode())


@DBOS.step()
def galera_members(cluster_id: str) -> dict[str, Any]:
    return _galera_members(cluster_id)


def _galera_members(cluster_id: str) -> dict[str, Any]:
    """``{"members": [...]}``: every live member not being removed, as ``GaleraMember``
    fields."""
    rt = current()
    with rt.sessions() as s:
        rec = load(s, cluster_id, None)
    members = []
    for member in rec.members:
        if member.instance.task_status == TaskStatus.DELETING.value:
            continue
        info = membership(member.instance)
        members.append(
            {
                "instance_id": member.instance.id,
                "host": member.host.address,
                "port": member.instance.port,
                "gcomm_port": info.gcomm_port,
                "ist_port": info.ist_port,
                "sst_port": info.sst_port,
            }
        )
    return {"members": members}


# -- Redis Cluster -------------------------------------------------------------------------


def _redis_add(wid: str, cluster_id: str, new: list[str], *, forming: bool) -> None:
    """Start the new members in cluster mode, introduce them, give the new masters
    slots (all of them when forming, a fair share otherwise) and the replicas their
    masters; the new members' tasks end once the cluster is healthy."""
    for instance_id in new:
        extras = redis_extras(cluster_id, instance_id)
        send_command(
            f"{wid}:ensure-{instance_id}", instance_id, CommandKind.ENSURE.value, {}, extras
        )
    observed = {i: await_on_cluster(f"{wid}:ensure-{i}", cluster_id) for i in new}
    for instance_id in new:
        node = _call(wid, f"open-{instance_id}", cluster_id, instance_id, "open_node", {})
        record_node(instance_id, str(node["node_id"]))
    if not forming:
        copy_users(cluster_id, new)
    introducer = live_members(cluster_id, not forming)[0]
    for target in member_addresses(cluster_id, new):
        if target["instance_id"] != introducer:
            args = {k: target[k] for k in ("host", "port", "bus_port")}
            _call(wid, f"meet-{target['instance_id']}", cluster_id, introducer, "meet", args)
    wait_redis_known(cluster_id)
    masters = [i for i in new if role_of(i) == "master"]
    if forming:
        for instance_id, ranges in zip(masters, even_split(len(masters)), strict=True):
            _call(
                wid, f"slots-{instance_id}", cluster_id, instance_id, "add_slots", {"slots": ranges}
            )
    elif masters:
        wait_healthy(cluster_id)
        _redis_rebalance(wid, cluster_id, without=[])
    for instance_id in new:
        master = master_node_of(instance_id)
        if master is not None:
            args = {"master_id": master}
            _call(wid, f"replicate-{instance_id}", cluster_id, instance_id, "replicate", args)
    wait_healthy(cluster_id)
    for instance_id in new:
        finish_task(instance_id, wid, observed=observed[instance_id])


def _redis_rebalance(wid: str, cluster_id: str, *, without: list[str]) -> None:
    """Spread the slots evenly over the masters not in ``without``, moving keys with
    them (clients are redirected meanwhile, so nothing is lost)."""
    plan = rebalance_plan(cluster_id, without)
    for index, move in enumerate(plan):
        source, target, slots = move["source"], move["target"], move["slots"]
        tag = f"move{index}"
        _call(
            wid,
            f"{tag}-import",
            cluster_id,
            target["instance_id"],
            "import_slots",
            {"source_id": source["node_id"], "slots": slots},
        )
        peer = {"host": target["host"], "port": target["port"], "node_id": target["node_id"]}
        _call(
            wid,
            f"{tag}-migrate",
            cluster_id,
            source["instance_id"],
            "migrate_slots",
            {"target": peer, "slots": slots},
        )
        owners = [target["instance_id"], source["instance_id"]] + [
            m for m in move["masters"] if m not in (target["instance_id"], source["instance_id"])
        ]
        for member in owners:
            _call(
                wid,
                f"{tag}-assign-{member}",
                cluster_id,
                member,
                "assign_slots",
                {"slots": slots, "owner_id": target["node_id"]},
            )


@DBOS.step()
def redis_extras(cluster_id: str, instance_id: str) -> str:
    """The sealed ENSURE extras that make ``instance_id`` a member: the cluster's
    password and the member's bus port."""
    rt = current()
    with rt.sessions() as s:
        rec = load(s, cluster_id, None)
        password = rt.sealer.open(rec.cluster.secret_sealed).decode()
        inst = s.get(Instance, instance_id)
        assert inst is not None
    cluster = {
        "kind": ClusterKind.REDIS.value,
        "password": password,
        "bus_port": membership(inst).bus_port,
    }
    return rt.sealer.seal(json.dumps({"cluster": cluster}).encode())


@DBOS.step()
def copy_users(cluster_id: str, new: list[str]) -> None:
    """Give the new members the users of a running member (ACL users are per node).
    One step, so the password hashes stay out of the workflow's recorded outputs."""
    running = _live(cluster_id, True)[0]
    lines = _ask(running, cluster_id, "tenant_users", {})["lines"]
    if lines:
        for instance_id in new:
            _ask(instance_id, cluster_id, "copy_users", {"lines": lines})


@RECORDING_STEP
def record_node(instance_id: str, node_id: str) -> None:
    rt = current()
    with rt.sessions.begin() as s:
        inst = s.get(Instance, instance_id)
        assert inst is not None
        inst.cluster_json = replace(membership(inst), node_id=node_id).to_json()


@DBOS.step()
def role_of(instance_id: str) -> str:
    rt = current()
    with rt.sessions() as s:
        inst = s.get(Instance, instance_id)
        assert inst is not None
        return membership(inst).role


@DBOS.step()
def master_node_of(instance_id: str) -> str | None:
    """The node id of the master a replica follows (None for a master)."""
    rt = current()
    with rt.sessions() as s:
        inst = s.get(Instance, instance_id)
        assert inst is not None
        follows = membership(inst).follows
        if follows is None:
            return None
        master = s.get(Instance, follows)
        assert master is not None
        return membership(master).node_id


@DBOS.step()
def removed_nodes(instance_ids: list[str]) -> list[str]:
    rt = current()
    with rt.sessions() as s:
        nodes = [membership(inst).node_id for inst in _instances(s, instance_ids)]
    return [node for node in nodes if node]


@DBOS.step()
def member_addresses(cluster_id: str, instance_ids: list[str]) -> list[dict[str, Any]]:
    rt = current()
    with rt.sessions() as s:
        rows = s.execute(
            select(Instance, Host.address)
            .join(Host, Host.id == Instance.host_id)
            .where(Instance.id.in_(instance_ids), Instance.cluster_id == cluster_id)
        ).all()
    return [
        {
            "instance_id": inst.id,
            "host": address,
            "port": inst.port,
            "bus_port": membership(inst).bus_port,
        }
        for inst, address in rows
    ]


def even_split(masters: int) -> list[list[list[int]]]:
    """The 16384 slots in ``masters`` contiguous shares, as ranges."""
    base, extra = divmod(SLOT_COUNT, masters)
    out, low = [], 0
    for index in range(masters):
        high = low + base + (1 if index < extra else 0) - 1
        out.append([[low, high]])
        low = high + 1
    return out


@DBOS.step()
def sync_redis_roles(cluster_id: str) -> None:
    """Record each member's role and master as the member itself reports them (gossip
    reaches the others later): Redis fails a master over to its replica by itself (a
    master down longer than the node timeout), and moves, views and shrink checks go by
    the recorded roles."""
    rt = current()
    seen = {}
    for instance_id in _live(cluster_id, True):
        try:
            seen[instance_id] = _ask(instance_id, cluster_id, "redis_state", {}, timeout_s=30)
        except CofferError as exc:  # down: its recorded role stands
            DBOS.logger.warning("role of cluster member %s unknown: %s", instance_id, exc)
    with rt.sessions.begin() as s:
        members = {m.instance.id: m.instance for m in load(s, cluster_id, None).members}
        by_node = {membership(inst).node_id: iid for iid, inst in members.items()}
        for iid, state in seen.items():
            info = membership(members[iid])
            follows = by_node.get(state["master_id"]) if state["role"] == "replica" else None
            if state["role"] == "replica" and follows is None:
                continue  # following a node Coffer does not know: leave it be
            if (info.role, info.follows) != (state["role"], follows):
                inst = s.get(Instance, iid)
                assert inst is not None
                inst.cluster_json = replace(info, role=state["role"], follows=follows).to_json()


@DBOS.step()
def rebalance_plan(cluster_id: str, without: list[str]) -> list[dict[str, Any]]:
    """The slot moves (``plan_rebalance``) over the masters not in ``without``, as the
    masters serve the slots now (asked of a master that stays)."""
    rt = current()
    with rt.sessions() as s:
        rec = load(s, cluster_id, None)
    masters = {
        m.instance.id: (m, membership(m.instance))
        for m in rec.members
        if membership(m.instance).role == "master"
    }
    staying = [i for i in masters if i not in without]
    state = _ask(masters[staying[0]][0].instance.id, cluster_id, "redis_state", {})
    current_slots = {
        node["node_id"]: [s for low, high in node["slots"] for s in range(low, high + 1)]
        for node in state["nodes"]
        if node["role"] == "master" and node["slots"]
    }
    by_node = {info.node_id: i for i, (_, info) in masters.items()}
    wanted = [masters[i][1].node_id for i in staying]
    moves = plan_rebalance(current_slots, [node for node in wanted if node])

    def describe_member(node_id: str) -> dict[str, Any]:
        instance_id = by_node[node_id]
        member = masters[instance_id][0]
        return {
            "instance_id": instance_id,
            "node_id": node_id,
            "host": member.host.address,
            "port": member.instance.port,
        }

    return [
        {
            "source": describe_member(move.source),
            "target": describe_member(move.target),
            "slots": [list(r) for r in slot_ranges(move.slots)],
            "masters": list(masters),
        }
        for move in moves
    ]


@DBOS.step()
def wait_redis_known(cluster_id: str) -> None:
    """Until every live member knows every other (the handshakes completed)."""
    members = _live(cluster_id, False)
    _poll(
        cluster_id,
        members,
        "redis_state",
        lambda state: state["known_nodes"] >= len(members),
        "the members did not all meet",
    )


# -- shared steps --------------------------------------------------------------------------


@DBOS.step()
def wait_healthy(cluster_id: str) -> None:
    """Until every live member reports a healthy cluster: Galera Synced in a Primary
    component of all members; Redis ``cluster_state:ok`` with every replica following."""
    members = _live(cluster_id, False)
    if _kind(cluster_id) == ClusterKind.GALERA.value:
        _poll(
            cluster_id,
            members,
            "galera_state",
            lambda st: st["primary"] and st["ready"] and st["local_state"] == "Synced",
            "the Galera members are not all Synced",
        )
    else:
        _poll(cluster_id, members, "redis_state", lambda st: st["ok"], "the cluster is not ok")


def _poll(
    cluster_id: str,
    members: list[str],
    op: str,
    done: Callable[[dict[str, Any]], bool],
    what: str,
) -> None:
    deadline = _deadline(cluster_id)
    last: dict[str, Any] = {}
    while True:
        waiting = []
        for member in members:
            try:
                state = _ask(member, cluster_id, op, {})
            except EngineError as exc:
                state = {"error": exc.message}
            last[member] = state
            if "error" in state or not done(state):
                waiting.append(member)
        if not waiting:
            return
        if time.time() > deadline:
            raise EngineError(f"{what} in time (still waiting for {', '.join(waiting)})")
        time.sleep(_POLL_S)


def _call(
    wid: str, tag: str, cluster_id: str, instance_id: str, op: str, args: dict[str, Any]
) -> dict[str, Any]:
    """One cluster step on one member, awaited (deterministic command id)."""
    cid = f"{wid}:{tag}"
    send_command(cid, instance_id, CommandKind.CLUSTER.value, {}, args={"op": op, "args": args})
    return await_on_cluster(cid, cluster_id)


def _ask(
    instance_id: str,
    cluster_id: str,
    op: str,
    args: dict[str, Any],
    *,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """One idempotent step on a member, from inside a DBOS step (a fresh command id each
    time), awaited until the cluster task's deadline (or ``timeout_s``, if sooner)."""
    rt = current()
    with rt.sessions() as s:
        rec = records.load(s, instance_id, None)
        spec = records.spec_of(rec)
        host_id = rec.host.id
    command_id = f"cluster-ask-{instance_id}-{uuid.uuid4().hex}"
    bus = CommandBus(rt)
    bus.submit(
        command_id=command_id,
        host_id=host_id,
        instance_id=instance_id,
        kind=CommandKind.CLUSTER,
        payload={"spec": spec.model_dump(), "op": op, "args": args},
    )
    deadline = _cluster_deadline(cluster_id)
    if timeout_s is not None:
        deadline = min(deadline, utcnow() + timedelta(seconds=timeout_s))
    return bus.wait(command_id, deadline)


def _deadline(cluster_id: str) -> float:
    return _cluster_deadline(cluster_id).timestamp()


def _cluster_deadline(cluster_id: str) -> datetime:
    rt = current()
    with rt.sessions() as s:
        cluster = s.get(Cluster, cluster_id)
        return cluster.task_deadline if cluster and cluster.task_deadline else utcnow()


@DBOS.step()
def await_on_cluster(command_id: str, cluster_id: str) -> dict[str, Any]:
    """Block until the agent reports the command, or the cluster task's deadline passes."""
    return CommandBus(current()).wait(command_id, _cluster_deadline(cluster_id))


def _remove(wid: str, cluster_id: str, instance_id: str) -> None:
    cid = f"{wid}:remove-{instance_id}"
    send_command(cid, instance_id, CommandKind.DELETE.value, {})
    await_on_cluster(cid, cluster_id)
    mark_deleted(instance_id, wid)


@DBOS.step()
def cluster_kind(cluster_id: str) -> str:
    return _kind(cluster_id)


def _kind(cluster_id: str) -> str:
    rt = current()
    with rt.sessions() as s:
        return load(s, cluster_id, None).kind.value


@DBOS.step()
def owned_members(cluster_id: str, wid: str) -> list[str]:
    """The members this workflow owns (to create, restart or remove), oldest first."""
    rt = current()
    with rt.sessions() as s:
        rec = load(s, cluster_id, None)
    return [m.instance.id for m in rec.members if m.instance.task_workflow_id == wid]


@DBOS.step()
def live_members(cluster_id: str, settled: bool = False) -> list[str]:
    return _live(cluster_id, settled)


def _live(cluster_id: str, settled: bool) -> list[str]:
    """The members that are not being removed; ``settled``: only those not being
    created either (they run and are in the cluster)."""
    rt = current()
    busy = {TaskStatus.DELETING.value}
    if settled:
        busy.add(TaskStatus.BUILDING.value)
    with rt.sessions() as s:
        rec = load(s, cluster_id, None)
    return [m.instance.id for m in rec.members if m.instance.task_status not in busy]


def cluster_event(s: Session, cluster_id: str, wid: str, outcome: str, detail: str) -> None:
    """The event of the cluster's task ending (only while ``wid`` owns it)."""
    cluster = s.get(Cluster, cluster_id)
    if cluster is None or cluster.task_workflow_id != wid:
        return
    action = {
        ClusterTask.BUILDING.value: "build",
        ClusterTask.GROWING_CLUSTER.value: "grow",
        ClusterTask.SHRINKING_CLUSTER.value: "shrink",
        ClusterTask.RESTARTING_CLUSTER.value: "restart",
        ClusterTask.DELETING.value: "delete",
    }.get(cluster.task_status, cluster.task_status.lower())
    events.record(
        s,
        project_id=cluster.project_id,
        action=f"cluster.{action}",
        resource_type="cluster",
        resource_id=cluster_id,
        outcome=outcome,
        detail=detail,
    )


def _end(cluster_id: str, wid: str, outcome: str, detail: str = "", **extra: Any) -> None:
    """End the cluster's task (only while ``wid`` owns it), with its event; ``extra``
    columns are set along."""
    rt = current()
    with rt.sessions.begin() as s:
        cluster_event(s, cluster_id, wid, outcome, detail)
        s.execute(
            update(Cluster)
            .where(Cluster.id == cluster_id, Cluster.task_workflow_id == wid)
            .values(
                task_status=ClusterTask.NONE.value,
                task_workflow_id=None,
                task_deadline=None,
                updated=utcnow(),
                **extra,
            )
        )


@RECORDING_STEP
def end_cluster(cluster_id: str, wid: str) -> None:
    _end(cluster_id, wid, "done")


@RECORDING_STEP
def record_cluster_fault(cluster_id: str, wid: str, message: str) -> None:
    _end(cluster_id, wid, "failed", message, fault_message=message, fault_created=utcnow())


@RECORDING_STEP
def mark_cluster_deleted(cluster_id: str, wid: str) -> None:
    _end(cluster_id, wid, "done", deleted=True, deleted_at=utcnow())


def _fail(cluster_id: str, wid: str, what: str, exc: Exception, task: TaskStatus) -> None:
    """Record the fault on the cluster and on every member the workflow still owns."""
    message, details = describe(exc)
    text = f"cluster {what} failed: {message}"
    for instance_id in owned_members(cluster_id, wid):
        fail_task(instance_id, wid, task.value, text, details)
    record_cluster_fault(cluster_id, wid, text)


def _instances(s: Session, instance_ids: list[str]) -> list[Instance]:
    return list(s.scalars(select(Instance).where(Instance.id.in_(instance_ids))))
