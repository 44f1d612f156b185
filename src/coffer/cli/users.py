"""``coffer user ...``: database users of an instance and their access to databases.

A user is named ``NAME`` plus an optional ``--host`` (the client hosts it may connect
from, as in MariaDB); without ``--host`` the server's default applies.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from coffer.cli.instances import InstanceArg, resolve_instance
from coffer.cli.output import JsonOption, emit_json, print_fields, print_note, print_table
from coffer.cli.state import CliState, current
from coffer.client import JSONObject, UserSpec

__all__ = ["app"]

app = typer.Typer(help="Manage the database users of an instance.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="User name.")]
HostOption = Annotated[
    str | None, typer.Option("--host", help="The user's host (default: the server's).")
]


def _instance_id(state: CliState, instance: str) -> str:
    return str(resolve_instance(state, instance)["id"])


def _databases(user: JSONObject) -> list[Any]:
    return [d.get("name") for d in user.get("databases") or () if isinstance(d, dict)]


def _who(name: str, host: str | None) -> str:
    return name if host is None else f"{name}@{host}"


@app.command("list")
def list_(ctx: typer.Context, instance: InstanceArg, json_output: JsonOption = False) -> None:
    """List the users of an instance."""
    state = current(ctx, json_output=json_output)
    users = state.client().list_users(_instance_id(state, instance))
    if state.json_output:
        emit_json({"users": users})
        return
    rows = [(u.get("name"), u.get("host"), _databases(u)) for u in users]
    print_table(state, ("Name", "Host", "Databases"), rows)


@app.command("create")
def create(
    ctx: typer.Context,
    instance: InstanceArg,
    name: NameArg,
    password: Annotated[
        str | None, typer.Argument(help="Password (asked for when not given).")
    ] = None,
    host: HostOption = None,
    database: Annotated[
        list[str] | None,
        typer.Option("--database", help="Database the user may use (repeatable)."),
    ] = None,
) -> None:
    """Create a user."""
    state = current(ctx)
    instance_id = _instance_id(state, instance)
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    spec = UserSpec(name, password, host, tuple(database or ()))
    state.client().create_users(instance_id, [spec])
    print_note(state, f"creating user {_who(name, host)} in {instance}")


@app.command("show")
def show(
    ctx: typer.Context,
    instance: InstanceArg,
    name: NameArg,
    host: HostOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a user and the databases it may use."""
    state = current(ctx, json_output=json_output)
    user = state.client().get_user(_instance_id(state, instance), name, host=host)
    if state.json_output:
        emit_json({"user": user})
        return
    fields = [("name", user.get("name")), ("host", user.get("host"))]
    print_fields(state, [*fields, ("databases", _databases(user))])


@app.command("delete")
def delete(
    ctx: typer.Context, instance: InstanceArg, name: NameArg, host: HostOption = None
) -> None:
    """Delete a user."""
    state = current(ctx)
    state.client().delete_user(_instance_id(state, instance), name, host=host)
    print_note(state, f"deleting user {_who(name, host)} from {instance}")


@app.command("update")
def update(
    ctx: typer.Context,
    instance: InstanceArg,
    name: NameArg,
    host: HostOption = None,
    new_name: Annotated[str | None, typer.Option(help="Rename the user.")] = None,
    new_password: Annotated[str | None, typer.Option(help="Set a new password.")] = None,
    new_host: Annotated[str | None, typer.Option(help="Set a new host.")] = None,
) -> None:
    """Rename a user, change its password or its host."""
    if new_name is None and new_password is None and new_host is None:
        raise typer.BadParameter("give --new-name, --new-password or --new-host")
    state = current(ctx)
    state.client().update_user(
        _instance_id(state, instance),
        name,
        host=host,
        new_name=new_name,
        new_password=new_password,
        new_host=new_host,
    )
    print_note(state, f"updating user {_who(name, host)} in {instance}")


@app.command("grant")
def grant(
    ctx: typer.Context,
    instance: InstanceArg,
    name: NameArg,
    databases: Annotated[list[str], typer.Argument(metavar="DATABASE...", help="Databases.")],
    host: HostOption = None,
) -> None:
    """Let a user use databases."""
    state = current(ctx)
    state.client().grant_user_access(_instance_id(state, instance), name, databases, host=host)
    print_note(state, f"granting {_who(name, host)} access to {', '.join(databases)}")


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    instance: InstanceArg,
    name: NameArg,
    database: Annotated[str, typer.Argument(help="Database.")],
    host: HostOption = None,
) -> None:
    """Take a database away from a user."""
    state = current(ctx)
    state.client().revoke_user_access(_instance_id(state, instance), name, database, host=host)
    print_note(state, f"revoking access of {_who(name, host)} to {database}")


@app.command("access")
def access(
    ctx: typer.Context,
    instance: InstanceArg,
    name: NameArg,
    host: HostOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the databases a user may use."""
    state = current(ctx, json_output=json_output)
    databases = state.client().list_user_access(_instance_id(state, instance), name, host=host)
    if state.json_output:
        emit_json({"databases": databases})
    else:
        print_table(state, ("Database",), [(d.get("name"),) for d in databases])
