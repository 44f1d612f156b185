"""``coffer metrics INSTANCE``: an instance's metrics over time (connections, operations
per second, CPU, memory, volume use, replication lag), as its agent reported them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from coffer.cli.instances import InstanceArg, resolve_instance
from coffer.cli.output import JsonOption, emit_json, print_table
from coffer.cli.state import current

__all__ = ["metrics", "size"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size(value: Any) -> str | None:
    """Bytes for people: ``12.3 MiB``; None stays None."""
    if not isinstance(value, int | float):
        return None
    amount, unit = float(value), 0
    while amount >= 1024 and unit < len(_UNITS) - 1:
        amount, unit = amount / 1024, unit + 1
    return f"{amount:.0f} {_UNITS[unit]}" if unit == 0 else f"{amount:.1f} {_UNITS[unit]}"


def _number(value: Any, digits: int = 1) -> str | None:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else None


def metrics(
    ctx: typer.Context,
    instance: InstanceArg,
    minutes: Annotated[
        int | None, typer.Option(help="How far back from now (the server's default: 60).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this moment (ISO 8601, UTC unless an offset).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to this moment (default: now).")] = None,
    points: Annotated[
        int | None, typer.Option(help="At most this many rows (longer series are averaged).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Show an instance's metrics over time, oldest first."""
    state = current(ctx, json_output=json_output)
    view = resolve_instance(state, instance)
    found = state.client().get_instance_metrics(
        str(view["id"]), minutes=minutes, since=since, until=until, points=points
    )
    if state.json_output:
        emit_json({"metrics": found})
        return
    kind = found.get("rate_kind") or "operations"
    rows = [
        (
            p.get("at"),
            "yes" if p.get("up") else "no",
            p.get("connections"),
            _number(p.get("rate_per_s")),
            _number(p.get("cpu_percent")),
            size(p.get("memory_bytes")),
            size(p.get("volume_used_bytes")),
            _number(p.get("replication_lag_s")),
        )
        for p in found.get("samples", [])
    ]
    columns = ("When (UTC)", "Up", "Conns", f"{kind}/s", "CPU %", "Memory", "Volume", "Lag s")
    title = f"{view.get('name')} ({view.get('id')}): {found.get('since')} to {found.get('until')}"
    print_table(state, columns, rows, title=title)
