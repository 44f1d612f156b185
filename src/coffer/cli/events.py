"""``coffer events``: the audit trail — who did what to which resource, and what the
system did by itself."""

from __future__ import annotations

from typing import Annotated

import typer

from coffer.cli.output import JsonOption, emit_json, print_table
from coffer.cli.state import current

__all__ = ["events"]


def events(
    ctx: typer.Context,
    resource: Annotated[
        str | None, typer.Argument(help="Only the events of this resource (an id).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    all_projects: Annotated[
        bool, typer.Option("--all-projects", help="Admin: every project's events.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Show the newest events: requests that changed something, and the system's own
    actions (failover, recovery, verification, engine restarts)."""
    state = current(ctx, json_output=json_output)
    found = state.client().list_events(resource_id=resource, limit=limit, all_projects=all_projects)
    if state.json_output:
        emit_json({"events": found})
        return
    rows = [
        (
            e.get("created"),
            e.get("actor"),
            e.get("action"),
            e.get("resource_id") or "-",
            e.get("outcome"),
            e.get("detail"),
        )
        for e in found
    ]
    print_table(state, ("When", "Who", "Action", "Resource", "Outcome", "Detail"), rows)
