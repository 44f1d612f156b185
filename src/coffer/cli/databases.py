"""``coffer database ...``: the databases inside an instance."""

from __future__ import annotations

from typing import Annotated

import typer

from coffer.cli.instances import InstanceArg, resolve_instance
from coffer.cli.output import JsonOption, emit_json, print_note, print_table
from coffer.cli.state import current

__all__ = ["app"]

app = typer.Typer(help="Manage the databases of an instance.", no_args_is_help=True)


@app.command("list")
def list_(ctx: typer.Context, instance: InstanceArg, json_output: JsonOption = False) -> None:
    """List the databases of an instance."""
    state = current(ctx, json_output=json_output)
    databases = state.client().list_databases(str(resolve_instance(state, instance)["id"]))
    if state.json_output:
        emit_json({"databases": databases})
    else:
        print_table(state, ("Name",), [(d.get("name"),) for d in databases])


@app.command("create")
def create(
    ctx: typer.Context,
    instance: InstanceArg,
    names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Databases to create.")],
    character_set: Annotated[str | None, typer.Option(help="Character set (engine's).")] = None,
    collate: Annotated[str | None, typer.Option(help="Collation (engine's).")] = None,
) -> None:
    """Create databases in an instance."""
    state = current(ctx)
    instance_id = str(resolve_instance(state, instance)["id"])
    state.client().create_databases(
        instance_id, names, character_set=character_set, collate=collate
    )
    print_note(state, f"creating {', '.join(names)} in {instance}")


@app.command("delete")
def delete(
    ctx: typer.Context,
    instance: InstanceArg,
    name: Annotated[str, typer.Argument(help="Database to delete.")],
) -> None:
    """Delete a database and its data."""
    state = current(ctx)
    state.client().delete_database(str(resolve_instance(state, instance)["id"]), name)
    print_note(state, f"deleting {name} from {instance}")
