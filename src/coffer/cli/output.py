"""How commands print: Rich tables for people, the server's JSON with ``--json``.

Data goes to stdout; progress and errors go to stderr, so ``--json`` output can always be
piped into a JSON parser.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from coffer.cli.state import CliState

__all__ = ["JsonOption", "emit_json", "print_fields", "print_note", "print_table", "text"]

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the server's JSON reply instead of a table.")
]


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def text(value: Any) -> str:
    """A cell: empty for missing values, lists joined with commas."""
    if value is None or value == "":
        return "-"
    if isinstance(value, list):
        return ", ".join(text(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def print_table(
    state: CliState, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str = ""
) -> None:
    table = Table(title=title or None, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(text(cell) for cell in row))
    state.out.print(table)


def print_fields(state: CliState, fields: Iterable[tuple[str, Any]]) -> None:
    """A two-column Field/Value table for one object."""
    print_table(state, ("Field", "Value"), fields)


def print_note(state: CliState, message: str) -> None:
    """A sentence for people (what was done); suppressed with ``--json``."""
    if not state.json_output:
        state.out.print(message, markup=False)
