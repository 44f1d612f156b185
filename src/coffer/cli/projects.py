"""``coffer project ...`` and ``coffer token ...``: admin commands to let people in.

``create`` prints the new credentials once; with ``--json`` exactly
``{"endpoint", "project_id", "token"}``, the shape of a ``credentials.json`` file.
"""

from __future__ import annotations

from typing import Annotated

import typer

from coffer.cli.output import JsonOption, emit_json, print_fields, print_table
from coffer.cli.state import CliState, current
from coffer.client import Credentials

__all__ = ["project_app", "token_app"]

project_app = typer.Typer(help="Admin: create and list projects.", no_args_is_help=True)
token_app = typer.Typer(help="Admin: issue API tokens.", no_args_is_help=True)


def _print_credentials(state: CliState, credentials: Credentials) -> None:
    if state.json_output:
        emit_json(dict(credentials))
        return
    print_fields(state, list(credentials.items()))
    state.out.print("to use them:", markup=False)
    state.out.print(f"  export COFFER_ENDPOINT={credentials['endpoint']}", markup=False)
    state.out.print(f"  export COFFER_TOKEN={credentials['token']}", markup=False)


@project_app.command("create")
def create_project(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Project name.")],
    json_output: JsonOption = False,
) -> None:
    """Create a project and print a first token for it."""
    state = current(ctx, json_output=json_output)
    created = state.client().create_project(name)
    _print_credentials(state, created["credentials"])


@project_app.command("list")
def list_projects(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List projects."""
    state = current(ctx, json_output=json_output)
    projects = state.client().list_projects()
    if state.json_output:
        emit_json({"projects": projects})
    else:
        print_table(state, ("ID", "Name"), [(p.get("id"), p.get("name")) for p in projects])


@token_app.command("create")
def create_token(
    ctx: typer.Context,
    project: Annotated[str, typer.Option(help="Project name or id.")],
    json_output: JsonOption = False,
) -> None:
    """Issue a new token for a project and print it."""
    state = current(ctx, json_output=json_output)
    _print_credentials(state, state.client().create_token(project))
