"""The ``coffer`` command line: Typer commands on top of ``coffer.client``.

``coffer.cli.main:app`` is the Typer application and ``main()`` its entry point. Code that
embeds or tests the CLI passes a ``coffer.cli.state.CliHooks`` as the Click context object
(``CliRunner().invoke(app, args, obj=CliHooks(client_factory=...))``) to choose how the
client is built. This package imports only ``coffer.client`` and ``coffer.contracts``
from the project; ``coffer.cli.serve`` (the server and agent commands) is the exception.
"""
