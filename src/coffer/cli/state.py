"""What one ``coffer`` invocation carries from the global options to its command.

``CliHooks`` is the documented seam for code that embeds or tests the CLI: pass one as
the Click context object and every command builds its client with
``hooks.client_factory(credentials)``::

    from typer.testing import CliRunner
    from coffer.cli.main import app
    from coffer.cli.state import CliHooks

    hooks = CliHooks(client_factory=lambda creds: CofferClient.from_credentials(
        creds, transport=httpx.MockTransport(handler)))
    CliRunner().invoke(app, ["instance", "list"], obj=hooks)

Credentials are still discovered as usual and handed to the factory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from coffer.cli.config import discover_credentials
from coffer.client import CofferClient, Credentials

__all__ = ["CliHooks", "CliState", "ClientFactory", "current", "default_client_factory"]

ClientFactory = Callable[[Credentials], CofferClient]
#: Width of tables when stdout is not a terminal (Rich would fold them at 80 columns).
PIPED_WIDTH = 240


def default_client_factory(credentials: Credentials) -> CofferClient:
    return CofferClient.from_credentials(credentials)


@dataclass(frozen=True)
class CliHooks:
    """Replaceable parts of the CLI; pass as ``obj=`` when invoking the Typer app."""

    client_factory: ClientFactory = default_client_factory
    #: seconds between two polls while a command waits (``--wait``)
    poll_interval: float = 2.0


class CliState:
    """Global options plus the lazily built client; lives in the root Click context."""

    def __init__(self, hooks: CliHooks, *, data_dir: Path | None, json_output: bool) -> None:
        self.hooks = hooks
        self.data_dir = data_dir
        self.json_output = json_output
        self.out = Console(highlight=False)
        if not self.out.is_terminal:  # piped: keep each row on one line for grep and awk
            self.out = Console(highlight=False, width=PIPED_WIDTH)
        self.err = Console(stderr=True, highlight=False)
        self._client: CofferClient | None = None

    def client(self) -> CofferClient:
        """The client for the discovered credentials; built on first use."""
        if self._client is None:
            self._client = self.hooks.client_factory(discover_credentials(self.data_dir))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def current(ctx: typer.Context, *, json_output: bool = False) -> CliState:
    """The invocation's state; a command's own ``--json`` switches JSON output on."""
    state = ctx.find_object(CliState)
    if state is None:  # a sub-app invoked on its own, without the root callback
        state = CliState(CliHooks(), data_dir=None, json_output=False)
        ctx.obj = state
        ctx.call_on_close(state.close)
    if json_output:
        state.json_output = True
    return state
