"""``--wait``: poll an instance with a spinner on stderr showing its status and the time."""

from __future__ import annotations

from typing import Annotated, Literal, overload

import typer
from rich.text import Text

from coffer.cli.state import CliState
from coffer.client import JSONObject, WaitUntil

__all__ = ["TimeoutOption", "WaitOption", "wait_for"]

WaitOption = Annotated[
    bool, typer.Option("--wait", help="Wait until the operation has finished, showing progress.")
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=0, help="Seconds to wait at most with --wait.")
]


@overload
def wait_for(
    state: CliState,
    instance_id: str,
    *,
    until: Literal[WaitUntil.READY],
    timeout: float,
    label: str,
) -> JSONObject: ...


@overload
def wait_for(
    state: CliState,
    instance_id: str,
    *,
    until: Literal[WaitUntil.DELETED],
    timeout: float,
    label: str,
) -> None: ...


def wait_for(
    state: CliState, instance_id: str, *, until: WaitUntil, timeout: float, label: str
) -> JSONObject | None:
    """Wait as ``CofferClient.wait_for_instance`` does; failures raise its errors."""
    client = state.client()
    with state.err.status(Text(f"{label}: waiting"), spinner="dots") as status:

        def show(view: JSONObject, elapsed: float) -> None:
            operating = view.get("operating_status") or "-"
            status.update(Text(f"{label}: {view.get('status')} / {operating}  {elapsed:.0f}s"))

        interval = state.hooks.poll_interval
        if until is WaitUntil.DELETED:
            client.wait_for_instance(
                instance_id, until=until, timeout=timeout, interval=interval, on_progress=show
            )
            return None
        return client.wait_for_instance(
            instance_id, until=WaitUntil.READY, timeout=timeout, interval=interval, on_progress=show
        )
