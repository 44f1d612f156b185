"""``coffer quota ...`` and ``coffer limits``: what a project may use."""

from __future__ import annotations

from typing import Annotated

import typer

from coffer.cli.output import JsonOption, emit_json, print_fields, print_table
from coffer.cli.state import current

__all__ = ["app", "limits"]

app = typer.Typer(help="Show and change project quotas.", no_args_is_help=True)


@app.command("show")
def show(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Argument(help="Project id (default: your own).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Show a project's quotas and their use."""
    state = current(ctx, json_output=json_output)
    quotas = state.client().get_quotas(project)
    if state.json_output:
        emit_json({"quotas": quotas})
        return
    rows = [(q.get("resource"), q.get("in_use"), q.get("reserved"), q.get("limit")) for q in quotas]
    print_table(state, ("Resource", "In use", "Reserved", "Limit"), rows)


@app.command("update")
def update(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project id.")],
    instances: Annotated[int | None, typer.Option(min=-1, help="Instances (-1: no limit).")] = None,
    ram: Annotated[int | None, typer.Option(min=-1, help="Memory in MB (-1: no limit).")] = None,
    volumes: Annotated[
        int | None, typer.Option(min=-1, help="Volume GB in total (-1: no limit).")
    ] = None,
    backups: Annotated[int | None, typer.Option(min=-1, help="Backups (-1: no limit).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Admin: change a project's quotas."""
    if instances is None and ram is None and volumes is None and backups is None:
        raise typer.BadParameter("give at least one of --instances, --ram, --volumes, --backups")
    state = current(ctx, json_output=json_output)
    quotas = state.client().update_quotas(
        project, instances=instances, ram=ram, volumes=volumes, backups=backups
    )
    if state.json_output:
        emit_json({"quotas": quotas})
    else:
        print_fields(state, sorted(quotas.items()))


def limits(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Show your project's absolute limits and rate limits."""
    state = current(ctx, json_output=json_output)
    entries = state.client().get_limits()
    if state.json_output:
        emit_json({"limits": entries})
        return
    absolute = [e for e in entries if e.get("verb") == "ABSOLUTE"]
    rates = [e for e in entries if e.get("verb") != "ABSOLUTE"]
    for entry in absolute:
        pairs = [(k.removeprefix("max_"), v) for k, v in entry.items() if k.startswith("max_")]
        print_table(state, ("Resource", "Limit"), pairs, title="Absolute limits")
    if rates:
        rows = [
            (r.get("verb"), r.get("uri"), r.get("value"), r.get("remaining"), r.get("unit"))
            for r in rates
        ]
        print_table(state, ("Verb", "URI", "Value", "Remaining", "Unit"), rows, title="Rate limits")
