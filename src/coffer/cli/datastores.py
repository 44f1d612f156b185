"""``coffer datastore ...``: the engines and versions instances can run."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from coffer.cli.output import JsonOption, emit_json, print_fields, print_table
from coffer.cli.state import current
from coffer.client import JSONObject

__all__ = ["app"]

app = typer.Typer(help="List and show datastores and their versions.", no_args_is_help=True)

DatastoreArg = Annotated[str, typer.Argument(metavar="DATASTORE", help="Datastore name or id.")]


def _version_names(datastore: JSONObject) -> list[Any]:
    return [v.get("name") for v in datastore.get("versions") or () if isinstance(v, dict)]


def _default_version(datastore: JSONObject) -> Any:
    """``default_version`` is a version id; show its name."""
    default = datastore.get("default_version")
    for version in datastore.get("versions") or ():
        if isinstance(version, dict) and version.get("id") == default:
            return version.get("name")
    return default


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List datastores."""
    state = current(ctx, json_output=json_output)
    datastores = state.client().list_datastores()
    if state.json_output:
        emit_json({"datastores": datastores})
        return
    rows = [
        (d.get("name"), d.get("id"), _version_names(d), _default_version(d)) for d in datastores
    ]
    print_table(state, ("Name", "ID", "Versions", "Default"), rows)


@app.command("show")
def show(ctx: typer.Context, datastore: DatastoreArg, json_output: JsonOption = False) -> None:
    """Show one datastore."""
    state = current(ctx, json_output=json_output)
    view = state.client().get_datastore(datastore)
    if state.json_output:
        emit_json({"datastore": view})
        return
    print_fields(
        state,
        [
            ("id", view.get("id")),
            ("name", view.get("name")),
            ("versions", _version_names(view)),
            ("default_version", _default_version(view)),
        ],
    )


@app.command("versions")
def versions(
    ctx: typer.Context,
    datastore: DatastoreArg,
    version: Annotated[
        str | None, typer.Argument(help="Show only this version (name or id).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List the versions of a datastore, or show one."""
    state = current(ctx, json_output=json_output)
    client = state.client()
    if version is not None:
        view = client.get_datastore_version(datastore, version)
        if state.json_output:
            emit_json({"version": view})
        else:
            print_fields(state, [(key, view.get(key)) for key in ("id", "name", "version")])
        return
    listed = client.list_datastore_versions(datastore)
    if state.json_output:
        emit_json({"versions": listed})
    else:
        rows = [(v.get("name"), v.get("id"), v.get("version")) for v in listed]
        print_table(state, ("Name", "ID", "Version"), rows)
