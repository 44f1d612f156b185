"""``coffer stack apply|show|delete FILE``: Heat-style templates of ``OS::Trove::Instance``
and ``OS::Trove::Cluster`` resources.

The stack is named by ``--name`` (default: the file name without its extension) and its
resources are found through a state file under the data directory
(``<data-dir>/stacks/<project-id>/<stack>.json``; see ``coffer.stacks.state``). A template
with problems, or a change that cannot be made in place, ends the command with one
``error:`` line before anything is created or changed. Progress goes to stderr; the table
(or ``--json``) of per-resource results to stdout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from coffer.cli.config import resolve_data_dir
from coffer.cli.output import JsonOption, emit_json, print_note, print_table
from coffer.cli.state import CliState, current
from coffer.stacks import (
    Stack,
    StackError,
    StackReport,
    StackRunner,
    StateStore,
    TemplateError,
    parse_overrides,
    read_template,
    validate_stack_name,
)

__all__ = ["app"]

app = typer.Typer(
    help="Apply, show and delete Heat-style stack templates (OS::Trove::Instance, "
    "OS::Trove::Cluster).",
    no_args_is_help=True,
)

FileArg = Annotated[
    Path,
    typer.Argument(
        metavar="FILE", dir_okay=False, help="A Heat-style YAML template (heat_template_version)."
    ),
]
NameOption = Annotated[
    str | None,
    typer.Option("--name", help="Stack name (default: the file name without its extension)."),
]
ParameterOption = Annotated[
    list[str] | None,
    typer.Option(
        "--parameter",
        "-P",
        metavar="KEY=VALUE",
        help="Set a template parameter, overriding its default (repeatable).",
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", min=0, help="Seconds to wait at most for each resource."),
]
COLUMNS = ("Resource", "Type", "ID", "Name", "Action", "Status", "Changes")
#: clusters wait for each member in turn
DEFAULT_TIMEOUT = 1200.0


@contextmanager
def _stack_errors() -> Iterator[None]:
    """A ``StackError`` ends the command with one ``error:`` line and status 1."""
    try:
        yield
    except StackError as exc:
        kind = "the template is invalid: " if isinstance(exc, TemplateError) else ""
        message = " ".join(f"{kind}{exc}".split())
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1) from None


def _stack_name(file: Path, name: str | None) -> str:
    return validate_stack_name(name if name is not None else file.stem)


def _read(file: Path, name: str | None, parameters: list[str] | None) -> Stack:
    stack_name = _stack_name(file, name)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read {file}: {exc}") from None
    try:
        overrides = parse_overrides(parameters or [])
    except ValueError as exc:
        raise TemplateError(str(exc)) from None
    return read_template(text, stack_name=stack_name, parameters=overrides)


def _runner(state: CliState, timeout: float) -> StackRunner:
    client = state.client()
    store = StateStore.for_project(resolve_data_dir(state.data_dir), client.project_id)

    def event(message: str) -> None:
        state.err.print(message, markup=False, highlight=False)

    return StackRunner(
        client, store, timeout=timeout, interval=state.hooks.poll_interval, on_event=event
    )


def _print_report(state: CliState, report: StackReport) -> None:
    if state.json_output:
        emit_json(report.to_json())
        return
    rows = [
        (r.resource, r.type.value, r.id, r.name, r.action, r.status, "; ".join(r.changes))
        for r in report.resources
    ]
    print_table(state, COLUMNS, rows, title=f"Stack {report.stack}: {report.summary}")
    if report.outputs:
        print_table(state, ("Output", "Value"), sorted(report.outputs.items()), title="Outputs")
    for refusal in report.refusals:
        print_note(state, f"cannot apply: {refusal}")


@app.command("apply")
def apply(
    ctx: typer.Context,
    file: FileArg,
    name: NameOption = None,
    parameter: ParameterOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    json_output: JsonOption = False,
) -> None:
    """Create, update in place and delete to match FILE; wait until all are ready.

    Missing resources are created (dependencies first), changed ones updated where Heat
    allows it, resources the template dropped deleted; each one's result is shown."""
    state = current(ctx, json_output=json_output)
    with _stack_errors():
        stack = _read(file, name, parameter)
        report = _runner(state, timeout).apply(stack)
    _print_report(state, report)


@app.command("show")
def show(
    ctx: typer.Context,
    file: FileArg,
    name: NameOption = None,
    parameter: ParameterOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the stack's resources, their status, and what apply would change.

    Nothing is changed."""
    state = current(ctx, json_output=json_output)
    with _stack_errors():
        stack = _read(file, name, parameter)
        report = _runner(state, DEFAULT_TIMEOUT).show(stack)
    _print_report(state, report)


@app.command("delete")
def delete(
    ctx: typer.Context,
    file: FileArg,
    name: NameOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    json_output: JsonOption = False,
) -> None:
    """Delete every resource of the stack and wait until all are gone.

    Dependents go first. Only the stack name is taken from FILE; it is not read."""
    state = current(ctx, json_output=json_output)
    with _stack_errors():
        report = _runner(state, timeout).delete(_stack_name(file, name))
    _print_report(state, report)
