"""``coffer root ...``: the engine's superuser of an instance."""

from __future__ import annotations

from typing import Annotated

import typer

from coffer.cli.instances import InstanceArg, resolve_instance
from coffer.cli.output import JsonOption, emit_json, print_fields, print_note
from coffer.cli.state import current

__all__ = ["app"]

app = typer.Typer(
    help="Enable, show or disable the superuser of an instance.", no_args_is_help=True
)


@app.command("enable")
def enable(
    ctx: typer.Context,
    instance: InstanceArg,
    password: Annotated[
        str | None, typer.Option(help="Password to set (default: the server generates one).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Enable the superuser and print its credentials (shown only this once)."""
    state = current(ctx, json_output=json_output)
    user = state.client().enable_root(
        str(resolve_instance(state, instance)["id"]), password=password
    )
    if state.json_output:
        emit_json({"user": user})
    else:
        print_fields(state, [("name", user.get("name")), ("password", user.get("password"))])


@app.command("show")
def show(ctx: typer.Context, instance: InstanceArg, json_output: JsonOption = False) -> None:
    """Tell whether the superuser has ever been enabled."""
    state = current(ctx, json_output=json_output)
    enabled = state.client().is_root_enabled(str(resolve_instance(state, instance)["id"]))
    if state.json_output:
        emit_json({"rootEnabled": enabled})
    else:
        print_fields(state, [("root_enabled", enabled)])


@app.command("disable")
def disable(ctx: typer.Context, instance: InstanceArg) -> None:
    """Disable the superuser."""
    state = current(ctx)
    state.client().disable_root(str(resolve_instance(state, instance)["id"]))
    print_note(state, f"disabled the superuser of {instance}")
