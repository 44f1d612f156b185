"""``coffer flavor ...``: sizes of instances (memory, CPUs)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from coffer.cli.output import JsonOption, emit_json, print_fields, print_table
from coffer.cli.state import current
from coffer.client import JSONObject

__all__ = ["app"]

app = typer.Typer(help="List, show and create flavors.", no_args_is_help=True)


def _flavor_id(flavor: JSONObject) -> Any:
    """Trove sends ``id: null`` for non-numeric ids, with the real one in ``str_id``."""
    return flavor.get("id") if flavor.get("id") is not None else flavor.get("str_id")


def _fields(flavor: JSONObject) -> list[tuple[str, Any]]:
    keys = ("name", "ram", "vcpus", "disk")
    return [("id", _flavor_id(flavor)), *((key, flavor.get(key)) for key in keys)]


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List flavors."""
    state = current(ctx, json_output=json_output)
    flavors = state.client().list_flavors()
    if state.json_output:
        emit_json({"flavors": flavors})
        return
    rows = [[value for _, value in _fields(f)] for f in flavors]
    print_table(state, ("ID", "Name", "RAM MB", "vCPUs", "Disk GB"), rows)


@app.command("show")
def show(
    ctx: typer.Context,
    flavor: Annotated[str, typer.Argument(help="Flavor id.")],
    json_output: JsonOption = False,
) -> None:
    """Show one flavor."""
    state = current(ctx, json_output=json_output)
    view = state.client().get_flavor(flavor)
    if state.json_output:
        emit_json({"flavor": view})
    else:
        print_fields(state, _fields(view))


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Flavor name.")],
    ram: Annotated[int, typer.Option(min=1, help="Memory in MB.")],
    vcpus: Annotated[int, typer.Option(min=1, help="Number of CPUs.")],
    disk: Annotated[int | None, typer.Option(min=0, help="Disk in GB.")] = None,
    flavor_id: Annotated[
        str | None, typer.Option("--id", help="Flavor id (default: chosen by the server).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Admin: create a flavor."""
    state = current(ctx, json_output=json_output)
    view = state.client().create_flavor(name, ram=ram, vcpus=vcpus, disk=disk, flavor_id=flavor_id)
    if state.json_output:
        emit_json({"flavor": view})
    else:
        print_fields(state, _fields(view))
