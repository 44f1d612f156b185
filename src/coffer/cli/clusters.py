"""``coffer cluster ...``: create, inspect, grow, shrink, restart and delete clusters.

A cluster is named by its id or, when unique in the project, by its name; a member by
its instance id or its name within the cluster. MariaDB clusters are Galera clusters
(3+ equal members); Redis clusters are Redis Clusters (3+ masters, and ``--replicas``
that follow them). The server enforces these rules and its refusal is shown as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, overload

import typer
from rich.text import Text

from coffer.cli.connection import host_port
from coffer.cli.output import JsonOption, emit_json, print_fields, print_note, print_table
from coffer.cli.state import CliState, current
from coffer.cli.waiting import TimeoutOption, WaitOption
from coffer.client import (
    ClusterMemberSpec,
    CofferAmbiguousNameError,
    CofferClient,
    CofferClientError,
    JSONObject,
    WaitUntil,
)

__all__ = ["app", "cluster_fields", "member_rows", "resolve_members"]

app = typer.Typer(
    help="Create and operate clusters: MariaDB Galera and Redis Cluster.", no_args_is_help=True
)

ClusterArg = Annotated[str, typer.Argument(metavar="CLUSTER", help="Cluster id or name.")]
ReplicasOption = Annotated[
    int,
    typer.Option(min=0, help="Redis: replicas to add, each following a master."),
]
LIST_COLUMNS = ("ID", "Name", "Datastore", "Version", "Task", "Members")
MEMBER_COLUMNS = ("ID", "Name", "Type", "Status", "Address", "Follows")
#: a cluster waits for each member in turn; give it longer than one instance
DEFAULT_TIMEOUT = 1200.0


def _label(view: JSONObject) -> str:
    return f"{view.get('name') or view.get('id')} ({view.get('id')})"


def _members(view: JSONObject) -> list[JSONObject]:
    members = view.get("instances")
    return [m for m in members if isinstance(m, dict)] if isinstance(members, list) else []


def _task(view: JSONObject) -> Any:
    task = view.get("task")
    return task.get("name") if isinstance(task, dict) else None


def _summary(view: JSONObject) -> str:
    """``4: 3 ACTIVE, 1 BUILD``: how many members, by status."""
    members = _members(view)
    counts: dict[str, int] = {}
    for member in members:
        status = str(member.get("status") or "-")
        counts[status] = counts.get(status, 0) + 1
    detail = ", ".join(f"{n} {status}" for status, n in counts.items())
    return f"{len(members)}: {detail}" if detail else "0"


def cluster_fields(view: JSONObject) -> list[tuple[str, Any]]:
    """The rows of ``cluster show`` above its members table."""
    datastore = view.get("datastore") or {}
    task = view.get("task") or {}
    fields: list[tuple[str, Any]] = [
        ("id", view.get("id")),
        ("name", view.get("name")),
        ("datastore", datastore.get("type")),
        ("datastore_version", datastore.get("version")),
        ("task", task.get("name")),
        ("task_description", task.get("description")),
        ("members", _summary(view)),
        ("ip", view.get("ip")),
        ("created", view.get("created")),
        ("updated", view.get("updated")),
    ]
    fault = view.get("fault")
    if isinstance(fault, dict):
        fields.append(("fault", fault.get("message")))
    return fields


def member_rows(view: JSONObject) -> list[tuple[Any, ...]]:
    """One row per member: id, name, type, status, host:port, the master it follows."""
    return [
        (
            m.get("id"),
            m.get("name"),
            m.get("type"),
            m.get("status"),
            host_port(m),
            m.get("master"),
        )
        for m in _members(view)
    ]


def _print_cluster(state: CliState, view: JSONObject) -> None:
    if state.json_output:
        emit_json({"cluster": view})
        return
    print_fields(state, cluster_fields(view))
    print_table(state, MEMBER_COLUMNS, member_rows(view), title="Members")


def resolve_members(view: JSONObject, names_or_ids: list[str]) -> list[str]:
    """The instance ids of the cluster's members named (by id, else by name) in
    ``names_or_ids``, in that order. Raises ``CofferClientError`` naming the cluster's
    members when one is not a member, ``CofferAmbiguousNameError`` when a name is shared.
    """
    members = _members(view)
    by_id = {str(m.get("id")): m for m in members}
    ids: list[str] = []
    for wanted in names_or_ids:
        if wanted in by_id:
            ids.append(wanted)
            continue
        named = [str(m.get("id")) for m in members if m.get("name") == wanted]
        if len(named) > 1:
            raise CofferAmbiguousNameError(wanted, named, kind="member")
        if not named:
            known = ", ".join(str(m.get("name") or m.get("id")) for m in members) or "none"
            raise CofferClientError(
                f"{wanted!r} is not a member of cluster {_label(view)} (its members: {known}); "
                "name members by id or name"
            )
        ids.append(named[0])
    return ids


def _default_version(client: CofferClient, datastore: str) -> str:
    """The name of the datastore's default version (the cluster API needs a version)."""
    view = client.get_datastore(datastore)
    default = view.get("default_version")
    for version in view.get("versions") or ():
        if isinstance(version, dict) and version.get("id") == default and version.get("name"):
            return str(version["name"])
    raise CofferClientError(
        f"datastore {datastore} has no default version: give --datastore-version"
    )


def _new_members(
    flavor: str, size: int | None, masters: int, replicas: int
) -> list[ClusterMemberSpec]:
    """``masters`` members of no type (Galera members; Redis masters by default), then
    ``replicas`` Redis replicas."""
    return [ClusterMemberSpec(flavor, size)] * masters + [
        ClusterMemberSpec(flavor, size, "replica")
    ] * replicas


@overload
def _watch(
    state: CliState, view: JSONObject, *, until: Literal[WaitUntil.READY], timeout: float
) -> JSONObject: ...


@overload
def _watch(
    state: CliState, view: JSONObject, *, until: Literal[WaitUntil.DELETED], timeout: float
) -> None: ...


def _watch(
    state: CliState, view: JSONObject, *, until: WaitUntil, timeout: float
) -> JSONObject | None:
    """Wait as ``CofferClient.wait_for_cluster`` does, with a spinner on stderr (task,
    members by status, seconds); failures raise its errors."""
    label = f"cluster {_label(view)}"
    client = state.client()
    cluster_id = str(view["id"])
    interval = state.hooks.poll_interval
    with state.err.status(Text(f"{label}: waiting"), spinner="dots") as status:

        def show(seen: JSONObject, elapsed: float) -> None:
            status.update(Text(f"{label}: {_task(seen)}, members {_summary(seen)}  {elapsed:.0f}s"))

        if until is WaitUntil.DELETED:
            client.wait_for_cluster(
                cluster_id, until=until, timeout=timeout, interval=interval, on_progress=show
            )
            return None
        return client.wait_for_cluster(
            cluster_id, until=WaitUntil.READY, timeout=timeout, interval=interval, on_progress=show
        )


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the new cluster.")],
    datastore: Annotated[str, typer.Option(help="mariadb (Galera) or redis (Redis Cluster).")],
    flavor: Annotated[str, typer.Option(help="Flavor id or name of every member, e.g. tiny.")],
    size: Annotated[int, typer.Option(min=1, help="Volume size in GB of every member.")],
    members: Annotated[int, typer.Option(min=1, help="Members (Redis: masters); at least 3.")] = 3,
    replicas: ReplicasOption = 0,
    datastore_version: Annotated[
        str | None, typer.Option(help="Datastore version (default: the datastore's default).")
    ] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    json_output: JsonOption = False,
) -> None:
    """Create a cluster; with --wait, show it once every member is ACTIVE."""
    state = current(ctx, json_output=json_output)
    client = state.client()
    version = datastore_version or _default_version(client, datastore)
    view = client.create_cluster(
        name, datastore, version, _new_members(flavor, size, members, replicas)
    )
    if not wait:
        _print_cluster(state, view)
        print_note(state, f"follow it with: coffer cluster show {view.get('id')}")
        return
    _print_cluster(state, _watch(state, view, until=WaitUntil.READY, timeout=timeout))


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List clusters."""
    state = current(ctx, json_output=json_output)
    clusters = state.client().list_clusters()
    if state.json_output:
        emit_json({"clusters": clusters})
        return
    rows = []
    for view in clusters:
        datastore = view.get("datastore") or {}
        rows.append(
            (
                view.get("id"),
                view.get("name"),
                datastore.get("type"),
                datastore.get("version"),
                _task(view),
                _summary(view),
            )
        )
    print_table(state, LIST_COLUMNS, rows)


@app.command("show")
def show(ctx: typer.Context, cluster: ClusterArg, json_output: JsonOption = False) -> None:
    """Show one cluster and its members, with their addresses."""
    state = current(ctx, json_output=json_output)
    _print_cluster(state, state.client().find_cluster(cluster))


def _act(
    ctx: typer.Context,
    cluster: str,
    *,
    doing: str,
    act: Callable[[CofferClient, JSONObject], JSONObject],
    wait: bool,
    timeout: float,
    json_output: bool,
) -> None:
    """Resolve, act, and with ``wait`` poll until the cluster is ready again."""
    state = current(ctx, json_output=json_output)
    found = state.client().find_cluster(cluster)
    view = act(state.client(), found)
    print_note(state, f"{doing} cluster {_label(found)}")
    if not wait:
        if state.json_output:
            emit_json({"cluster": view})
        else:
            print_note(state, f"follow it with: coffer cluster show {found.get('id')}")
        return
    _print_cluster(state, _watch(state, view, until=WaitUntil.READY, timeout=timeout))


@app.command("grow")
def grow(
    ctx: typer.Context,
    cluster: ClusterArg,
    members: Annotated[
        int | None,
        typer.Option(
            min=0, help="Members (Redis: masters) to add; default 1, or 0 with --replicas."
        ),
    ] = None,
    replicas: ReplicasOption = 0,
    wait: WaitOption = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    json_output: JsonOption = False,
) -> None:
    """Add members with the cluster's flavor and volume size."""
    masters = members if members is not None else (0 if replicas else 1)
    if masters + replicas == 0:
        raise typer.BadParameter("add at least one member or replica", param_hint="--members")

    def add(client: CofferClient, view: JSONObject) -> JSONObject:
        first = next(iter(_members(view)), None)
        flavor = (first or {}).get("flavor") or {}
        size = ((first or {}).get("volume") or {}).get("size")
        if not flavor.get("id"):
            raise CofferClientError(
                f"cluster {_label(view)} has no member to copy a flavor from: "
                "delete it and create it again"
            )
        new = _new_members(str(flavor["id"]), size, masters, replicas)
        return client.grow_cluster(str(view["id"]), new)

    added = masters + replicas
    _act(
        ctx,
        cluster,
        doing=f"adding {added} member{'s' if added != 1 else ''} to",
        act=add,
        wait=wait,
        timeout=timeout,
        json_output=json_output,
    )


@app.command("shrink")
def shrink(
    ctx: typer.Context,
    cluster: ClusterArg,
    member: Annotated[
        list[str], typer.Argument(metavar="MEMBER", help="Members to remove (id or name).")
    ],
    wait: WaitOption = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    json_output: JsonOption = False,
) -> None:
    """Remove members (a Redis master's slots move to the other masters first)."""

    def remove(client: CofferClient, view: JSONObject) -> JSONObject:
        return client.shrink_cluster(str(view["id"]), resolve_members(view, member))

    _act(
        ctx,
        cluster,
        doing=f"removing {', '.join(member)} from",
        act=remove,
        wait=wait,
        timeout=timeout,
        json_output=json_output,
    )


@app.command("restart")
def restart(
    ctx: typer.Context,
    cluster: ClusterArg,
    wait: WaitOption = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    json_output: JsonOption = False,
) -> None:
    """Restart every member in turn (a Galera cluster that is down is recovered)."""
    _act(
        ctx,
        cluster,
        doing="restarting",
        act=lambda client, view: client.restart_cluster(str(view["id"])),
        wait=wait,
        timeout=timeout,
        json_output=json_output,
    )


@app.command("delete")
def delete(
    ctx: typer.Context,
    cluster: ClusterArg,
    wait: WaitOption = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> None:
    """Delete a cluster, every member and everything in them."""
    state = current(ctx)
    view = state.client().find_cluster(cluster)
    state.client().delete_cluster(str(view["id"]))
    print_note(state, f"deleting cluster {_label(view)}")
    if wait:
        _watch(state, view, until=WaitUntil.DELETED, timeout=timeout)
        print_note(state, f"deleted cluster {_label(view)}")
