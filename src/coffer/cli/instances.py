"""``coffer instance ...``: create, inspect and operate database instances."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from coffer.cli.connection import connection_format, connection_target, host_port
from coffer.cli.output import JsonOption, emit_json, print_fields, print_note, print_table
from coffer.cli.state import CliState, current
from coffer.cli.waiting import TimeoutOption, WaitOption, wait_for
from coffer.client import CofferClient, JSONObject, UserSpec, WaitUntil

__all__ = ["InstanceArg", "app", "instance_fields", "print_ready", "resolve_instance"]

app = typer.Typer(help="Create, inspect and operate database instances.", no_args_is_help=True)

InstanceArg = Annotated[str, typer.Argument(metavar="INSTANCE", help="Instance id or name.")]


def resolve_instance(state: CliState, name_or_id: str) -> JSONObject:
    """The instance with this id, else the one instance with this name."""
    return state.client().find_instance(name_or_id)


def _label(view: JSONObject) -> str:
    return f"{view.get('name') or view.get('id')} ({view.get('id')})"


def _flavor_id(view: JSONObject) -> Any:
    flavor = view.get("flavor")
    return flavor.get("id") if isinstance(flavor, dict) else None


def _parse_user(value: str) -> tuple[str, str]:
    name, sep, password = value.partition(":")
    if not sep or not name or not password:
        raise typer.BadParameter(
            f"expected NAME:PASSWORD, got {value.split(':')[0]!r}...", param_hint="--user"
        )
    return name, password


def instance_fields(view: JSONObject) -> list[tuple[str, Any]]:
    """The rows of ``instance show`` (connection details without any password)."""
    datastore = view.get("datastore") or {}
    volume = view.get("volume") or {}
    fields: list[tuple[str, Any]] = [
        ("id", view.get("id")),
        ("name", view.get("name")),
        ("status", view.get("status")),
        ("operating_status", view.get("operating_status")),
        ("datastore", datastore.get("type")),
        ("datastore_version", datastore.get("version")),
        ("flavor", _flavor_id(view)),
        ("volume_size_gb", volume.get("size")),
    ]
    if volume.get("used") is not None:
        fields.append(("volume_used_gb", volume.get("used")))
    fields.append(("address", host_port(view)))
    target, fmt = connection_target(view), connection_format(view)
    if target is not None and fmt is not None:
        fields.append(("url", fmt.url(target)))
    fields += [("created", view.get("created")), ("updated", view.get("updated"))]
    if isinstance(view.get("replica_of"), dict):
        fields.append(("replica_of", view["replica_of"].get("id")))
    if view.get("replicas"):
        fields.append(("replicas", ", ".join(str(r.get("id")) for r in view["replicas"])))
    replication = view.get("replication")
    if isinstance(replication, dict) and replication.get("role") == "replica":
        fields.append(("replication_lag_s", replication.get("lag_seconds")))
    if view.get("latest_restorable_time"):
        fields.append(("restorable_from", view.get("earliest_restorable_time")))
        fields.append(("restorable_until", view.get("latest_restorable_time")))
    fault = view.get("fault")
    if isinstance(fault, dict):
        fields.append(("fault", fault.get("message")))
    return fields


def print_ready(
    state: CliState, view: JSONObject, *, user: str | None = None, database: str | None = None
) -> None:
    """Tell how to connect to an instance that has just become ready."""
    if state.json_output:
        emit_json({"instance": view})
        return
    out = state.out
    out.print(
        f"{_label(view)} is {view.get('status')} / {view.get('operating_status')}", markup=False
    )
    target = connection_target(view, user=user, database=database)
    if target is None:
        out.print("the server reports no address for it yet", markup=False)
        return
    out.print(f"address: {target.netloc}", markup=False)
    fmt = connection_format(view)
    if fmt is not None:
        out.print(f"connect: {fmt.shell_command(target)}", markup=False)
        out.print(f"url:     {fmt.url(target)}", markup=False)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the new instance.")],
    datastore: Annotated[str, typer.Option(help="Datastore type, e.g. postgresql.")],
    flavor: Annotated[str, typer.Option(help="Flavor id or name, e.g. small.")],
    size: Annotated[int | None, typer.Option(min=1, help="Volume size in GB.")] = None,
    datastore_version: Annotated[
        str | None, typer.Option(help="Datastore version (default: the datastore's default).")
    ] = None,
    database: Annotated[
        list[str] | None, typer.Option("--database", help="Database to create (repeatable).")
    ] = None,
    user: Annotated[
        list[str] | None,
        typer.Option(
            "--user",
            metavar="NAME:PASSWORD",
            help="User to create with access to every --database (repeatable).",
        ),
    ] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    json_output: JsonOption = False,
) -> None:
    """Create an instance; with --wait, print how to connect once it is healthy."""
    state = current(ctx, json_output=json_output)
    databases = tuple(database or ())
    users = [_parse_user(u) for u in user or ()]
    view = state.client().create_instance(
        name,
        flavor=flavor,
        datastore=datastore,
        datastore_version=datastore_version,
        volume_size=size,
        databases=databases,
        users=[UserSpec(n, p, databases=databases) for n, p in users],
    )
    if not wait:
        if state.json_output:
            emit_json({"instance": view})
        else:
            print_fields(state, instance_fields(view))
            print_note(state, f"follow it with: coffer instance show {view.get('id')}")
        return
    ready = wait_for(
        state, str(view["id"]), until=WaitUntil.READY, timeout=timeout, label=_label(view)
    )
    print_ready(
        state,
        ready,
        user=users[0][0] if users else None,
        database=databases[0] if databases else None,
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    all_projects: Annotated[
        bool, typer.Option("--all-projects", help="Admin: every project's instances.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """List instances."""
    state = current(ctx, json_output=json_output)
    client = state.client()
    instances = client.list_all_instances() if all_projects else client.list_instances()
    if state.json_output:
        emit_json({"instances": instances})
        return
    columns = ("ID", "Name", "Datastore", "Version", "Status", "Operating", "Address", "Flavor")
    print_table(state, (*columns, "Size GB"), [_list_row(i) for i in instances])


def _list_row(view: JSONObject) -> tuple[Any, ...]:
    datastore = view.get("datastore") or {}
    return (
        view.get("id"),
        view.get("name"),
        datastore.get("type"),
        datastore.get("version"),
        view.get("status"),
        view.get("operating_status"),
        host_port(view),
        _flavor_id(view),
        (view.get("volume") or {}).get("size"),
    )


@app.command("show")
def show(ctx: typer.Context, instance: InstanceArg, json_output: JsonOption = False) -> None:
    """Show one instance, with its address and connection URL."""
    state = current(ctx, json_output=json_output)
    view = resolve_instance(state, instance)
    if state.json_output:
        emit_json({"instance": view})
    else:
        print_fields(state, instance_fields(view))


def _act(
    ctx: typer.Context,
    instance: str,
    *,
    doing: str,
    act: Callable[[CofferClient, str], None],
    wait: bool,
    timeout: float,
    json_output: bool,
) -> None:
    """Resolve, act, and with ``wait`` poll until the instance is ready again."""
    state = current(ctx, json_output=json_output)
    view = resolve_instance(state, instance)
    instance_id = str(view["id"])
    act(state.client(), instance_id)
    print_note(state, f"{doing} {_label(view)}")
    if wait:
        ready = wait_for(
            state, instance_id, until=WaitUntil.READY, timeout=timeout, label=_label(view)
        )
        print_ready(state, ready)


@app.command("delete")
def delete(
    ctx: typer.Context,
    instance: InstanceArg,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
) -> None:
    """Delete an instance and everything in it."""
    state = current(ctx)
    view = resolve_instance(state, instance)
    instance_id = str(view["id"])
    state.client().delete_instance(instance_id)
    print_note(state, f"deleting {_label(view)}")
    if wait:
        wait_for(state, instance_id, until=WaitUntil.DELETED, timeout=timeout, label=_label(view))
        print_note(state, f"deleted {_label(view)}")


@app.command("restart")
def restart(
    ctx: typer.Context,
    instance: InstanceArg,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    json_output: JsonOption = False,
) -> None:
    """Restart the database engine of an instance."""
    _act(
        ctx,
        instance,
        doing="restarting",
        act=lambda client, i: client.restart_instance(i),
        wait=wait,
        timeout=timeout,
        json_output=json_output,
    )


@app.command("resize-flavor")
def resize_flavor(
    ctx: typer.Context,
    instance: InstanceArg,
    flavor: Annotated[str, typer.Argument(help="The new flavor's id or name.")],
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    json_output: JsonOption = False,
) -> None:
    """Move an instance to another flavor (memory, CPUs, connections)."""
    _act(
        ctx,
        instance,
        doing=f"resizing to flavor {flavor}:",
        act=lambda client, i: client.resize_instance_flavor(i, flavor),
        wait=wait,
        timeout=timeout,
        json_output=json_output,
    )


@app.command("resize-volume")
def resize_volume(
    ctx: typer.Context,
    instance: InstanceArg,
    size: Annotated[int, typer.Argument(min=1, help="The new volume size in GB (grow only).")],
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    json_output: JsonOption = False,
) -> None:
    """Grow the volume of an instance."""
    _act(
        ctx,
        instance,
        doing=f"resizing the volume to {size} GB:",
        act=lambda client, i: client.resize_instance_volume(i, size),
        wait=wait,
        timeout=timeout,
        json_output=json_output,
    )


@app.command("reset-status")
def reset_status(
    ctx: typer.Context,
    instance: InstanceArg,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    json_output: JsonOption = False,
) -> None:
    """Admin: clear the task of a stuck or failed instance."""
    _act(
        ctx,
        instance,
        doing="resetting the status of",
        act=lambda client, i: client.reset_instance_status(i),
        wait=wait,
        timeout=timeout,
        json_output=json_output,
    )


@app.command("replicate")
def replicate(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="Instance id or name.")],
    name: Annotated[str, typer.Argument(help="Name of the new replica.")],
    count: Annotated[int, typer.Option(min=1, max=3, help="How many replicas (1-3).")] = 1,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    json_output: JsonOption = False,
) -> None:
    """Create read-only replicas that follow an instance."""
    state = current(ctx, json_output=json_output)
    origin = resolve_instance(state, source)
    view = state.client().create_replica(name, str(origin["id"]), count=count)
    if not wait:
        if state.json_output:
            emit_json({"instance": view})
        else:
            print_fields(state, instance_fields(view))
            print_note(state, f"replicating {_label(origin)} into {_label(view)}")
        return
    ready = wait_for(
        state, str(view["id"]), until=WaitUntil.READY, timeout=timeout, label=_label(view)
    )
    print_ready(state, ready)


@app.command("promote")
def promote(
    ctx: typer.Context,
    instance: InstanceArg,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    json_output: JsonOption = False,
) -> None:
    """Make a replica the source of its set (planned switchover, no write lost)."""
    _act(
        ctx,
        instance,
        doing="promoting",
        act=lambda client, i: client.promote_replica(i),
        wait=wait,
        timeout=timeout,
        json_output=json_output,
    )


@app.command("eject")
def eject(
    ctx: typer.Context,
    instance: InstanceArg,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    json_output: JsonOption = False,
) -> None:
    """Replace a lost source with its most advanced replica."""
    _act(
        ctx,
        instance,
        doing="ejecting",
        act=lambda client, i: client.eject_replica_source(i),
        wait=wait,
        timeout=timeout,
        json_output=json_output,
    )


@app.command("detach")
def detach(
    ctx: typer.Context,
    instance: InstanceArg,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    json_output: JsonOption = False,
) -> None:
    """Detach a replica from its source: it becomes a standalone, writable instance."""
    _act(
        ctx,
        instance,
        doing="detaching",
        act=lambda client, i: client.detach_replica(i),
        wait=wait,
        timeout=timeout,
        json_output=json_output,
    )


@app.command("rename")
def rename(
    ctx: typer.Context,
    instance: InstanceArg,
    new_name: Annotated[str, typer.Argument(help="The new name.")],
) -> None:
    """Rename an instance."""
    state = current(ctx)
    view = resolve_instance(state, instance)
    state.client().rename_instance(str(view["id"]), new_name)
    print_note(state, f"renamed {_label(view)} to {new_name}")
