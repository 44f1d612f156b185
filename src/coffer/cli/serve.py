"""``coffer server`` and ``coffer agent``: the long-running processes.

This module is the one part of the CLI allowed to import the server and agent packages;
it imports them inside the commands so that other commands start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from coffer.cli.state import CliState


def register(app: typer.Typer) -> None:
    app.command("server", help="Run the control plane (API, workflows) and the local agent.")(
        server
    )
    app.command("agent", help="Run a host agent (normally started by the server).")(agent)


def server(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="state directory [env COFFER_DATA_DIR]")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="listen address (default 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="listen port (default 8779)")] = None,
    no_local_agent: Annotated[
        bool, typer.Option("--no-local-agent", help="do not start an agent here")
    ] = False,
) -> None:
    from coffer.server import serve
    from coffer.settings import ServerSettings

    overrides: dict[str, Any] = {}
    state = ctx.find_object(CliState)
    data_dir = data_dir or (state.data_dir if state else None)
    if data_dir is not None:
        overrides["data_dir"] = data_dir.resolve()
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if no_local_agent:
        overrides["local_agent"] = False
    serve(ServerSettings(**overrides))


def agent(
    server_url: Annotated[
        str | None, typer.Option("--server-url", help="control plane URL")
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="agent state directory")
    ] = None,
    host_name: Annotated[str | None, typer.Option("--host-name", help="this host's name")] = None,
    advertise_host: Annotated[
        str | None, typer.Option("--advertise-host", help="address clients use")
    ] = None,
) -> None:
    """The join token comes from COFFER_AGENT_JOIN_TOKEN (never a flag: flags show in ps)."""
    from coffer.agent.main import run_agent
    from coffer.settings import AgentSettings

    overrides: dict[str, Any] = {}
    if server_url is not None:
        overrides["server_url"] = server_url
    if state_dir is not None:
        overrides["state_dir"] = state_dir.resolve()
    if host_name is not None:
        overrides["host_name"] = host_name
    if advertise_host is not None:
        overrides["advertise_host"] = advertise_host
    run_agent(AgentSettings(**overrides))
