"""The ``coffer`` application: global options, command groups, and error reporting.

Every failure a person can act on (an HTTP error, an unreachable server, missing
credentials, a failed wait) ends the command with exactly one line on stderr,
``error: <message>``, and exit status 1; usage errors exit 2 as Click does.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from coffer.cli import (
    backups,
    clusters,
    databases,
    datastores,
    events,
    flavors,
    instances,
    logs,
    metrics,
    projects,
    quotas,
    root,
    stacks,
    users,
)
from coffer.cli.config import CredentialsError
from coffer.cli.output import JsonOption
from coffer.cli.state import CliHooks, CliState
from coffer.client import CofferClientError

__all__ = ["CofferGroup", "app", "main"]


class CofferGroup(TyperGroup):
    """The root group: turns the errors of any subcommand into one ``error:`` line."""

    def invoke(self, ctx: Any) -> Any:  # Typer's own Click context
        try:
            return super().invoke(ctx)
        except (CofferClientError, CredentialsError) as exc:
            message = " ".join(str(exc).split())
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="coffer",
    cls=CofferGroup,
    help="Coffer: databases as a service. Talks to a Coffer server's REST API.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Data directory holding credentials.json "
            "(default: $COFFER_DATA_DIR, else <checkout>/var, else ~/.local/share/coffer).",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Credentials: $COFFER_ENDPOINT and $COFFER_TOKEN, else <data-dir>/credentials.json."""
    hooks = ctx.obj if isinstance(ctx.obj, CliHooks) else CliHooks()
    state = CliState(hooks, data_dir=data_dir, json_output=json_output)
    ctx.obj = state
    ctx.call_on_close(state.close)


app.add_typer(instances.app, name="instance")
app.add_typer(databases.app, name="database")
app.add_typer(users.app, name="user")
app.add_typer(root.app, name="root")
app.add_typer(logs.app, name="log")
app.add_typer(backups.app, name="backup")
app.add_typer(clusters.app, name="cluster")
app.add_typer(flavors.app, name="flavor")
app.add_typer(datastores.app, name="datastore")
app.add_typer(quotas.app, name="quota")
app.command("limits")(quotas.limits)
app.command("events")(events.events)
app.command("metrics")(metrics.metrics)
app.add_typer(projects.project_app, name="project")
app.add_typer(projects.token_app, name="token")
app.add_typer(stacks.app, name="stack")


def _register_serve_commands(target: typer.Typer) -> None:
    """Add ``coffer server`` and ``coffer agent`` when ``coffer.cli.serve`` is installed.

    That module may import the server and agent packages, which this package may not.
    """
    if importlib.util.find_spec("coffer.cli.serve") is None:
        return
    module = importlib.import_module("coffer.cli.serve")
    register: Callable[[typer.Typer], None] = module.register
    register(target)


_register_serve_commands(app)


def main() -> None:
    """Entry point of the ``coffer`` script."""
    app(prog_name="coffer")


if __name__ == "__main__":
    main()
