"""``coffer log ...``: an instance's logs (Trove's guest logs) — list them, switch USER
logs on or off, and publish them to the instance's backup store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from coffer.cli.instances import InstanceArg, resolve_instance
from coffer.cli.output import JsonOption, emit_json, print_fields, print_table
from coffer.cli.state import CliState, current
from coffer.client import CofferClient

__all__ = ["app"]

app = typer.Typer(
    help="List, switch and publish an instance's logs (error, slow_query, general).",
    no_args_is_help=True,
)

LogArg = Annotated[str, typer.Argument(help="Log name, e.g. slow_query (see 'coffer log list').")]
_FIELDS = ("name", "type", "status", "published", "pending", "container", "prefix", "metafile")


@app.command("list")
def list_logs(ctx: typer.Context, instance: InstanceArg, json_output: JsonOption = False) -> None:
    """The logs of an instance, with their status and sizes (bytes)."""
    state = current(ctx, json_output=json_output)
    logs = state.client().list_logs(str(resolve_instance(state, instance)["id"]))
    if state.json_output:
        emit_json({"logs": logs})
    else:
        columns = ("name", "type", "status", "published", "pending", "prefix")
        print_table(state, columns, ([log.get(f) for f in columns] for log in logs))


def _one(
    ctx: typer.Context,
    instance: str,
    json_output: bool,
    call: Callable[[CofferClient], Callable[[str, str], dict[str, Any]]],
    name: str,
) -> None:
    state: CliState = current(ctx, json_output=json_output)
    client = state.client()
    log = call(client)(str(resolve_instance(state, instance)["id"]), name)
    if state.json_output:
        emit_json({"log": log})
    else:
        print_fields(state, [(f, log.get(f)) for f in _FIELDS])


@app.command("show")
def show(
    ctx: typer.Context, instance: InstanceArg, name: LogArg, json_output: JsonOption = False
) -> None:
    """One log: status, bytes published and pending, where it is published."""
    _one(ctx, instance, json_output, lambda c: c.show_log, name)


@app.command("enable")
def enable(
    ctx: typer.Context, instance: InstanceArg, name: LogArg, json_output: JsonOption = False
) -> None:
    """Switch a USER log on, live (kept across restarts)."""
    _one(ctx, instance, json_output, lambda c: c.enable_log, name)


@app.command("disable")
def disable(
    ctx: typer.Context, instance: InstanceArg, name: LogArg, json_output: JsonOption = False
) -> None:
    """Switch a USER log off (what was published stays until discarded)."""
    _one(ctx, instance, json_output, lambda c: c.disable_log, name)


@app.command("publish")
def publish(
    ctx: typer.Context, instance: InstanceArg, name: LogArg, json_output: JsonOption = False
) -> None:
    """Copy what the log gained since its last publish to the backup store."""
    _one(ctx, instance, json_output, lambda c: c.publish_log, name)


@app.command("discard")
def discard(
    ctx: typer.Context, instance: InstanceArg, name: LogArg, json_output: JsonOption = False
) -> None:
    """Remove everything published of the log from the backup store."""
    _one(ctx, instance, json_output, lambda c: c.discard_log, name)
