"""``coffer server``: metadata, workflows, the API and (by default) the local agent."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn
from dbos import DBOS, DBOSConfig

from coffer import __version__
from coffer.api.app import create_app
from coffer.db.session import make_engine, migrate, session_factory
from coffer.local_agent import LocalAgent
from coffer.security import Sealer, load_or_create_key
from coffer.services import agents, bootstrap, recovery
from coffer.services.failover import FailoverMonitor
from coffer.services.runtime import Runtime
from coffer.settings import ServerSettings
from coffer.workflows import runtime as wf_runtime

log = logging.getLogger("coffer.server")


def build_runtime(settings: ServerSettings) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o755)
    engine = make_engine(settings.metadata_url)
    migrate(engine)
    sealer = Sealer(load_or_create_key(settings.data_dir / "master.key"))
    return Runtime(settings=settings, sessions=session_factory(engine), sealer=sealer)


def launch_workflows(rt: Runtime) -> None:
    """Start DBOS (recovering this version's in-flight workflows) and mend orphans."""
    # importing the modules registers their workflows
    import coffer.workflows.instances
    import coffer.workflows.replicas  # noqa: F401

    wf_runtime.install(rt)
    config: DBOSConfig = {
        "name": "coffer",
        "system_database_url": rt.settings.dbos_url,
        "application_version": __version__,
        "executor_id": "coffer-server",
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    recovery.mend_orphaned_tasks(rt)


class _Server(uvicorn.Server):
    """uvicorn, telling long polls to end as soon as a stop is asked for."""

    def __init__(self, config: uvicorn.Config, *, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def serve(settings: ServerSettings) -> None:
    os.umask(0o077)  # state files are private; shared directories are chmod-ed explicitly
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    rt = build_runtime(settings)
    bootstrap.seed(rt)
    creds = bootstrap.ensure_admin_credentials(rt)
    launch_workflows(rt)
    local = (
        LocalAgent(rt.settings, join_token=agents.create_join_token(rt))
        if settings.local_agent
        else None
    )

    monitor = FailoverMonitor(rt)

    def on_startup() -> None:
        monitor.start()
        if local:
            local.start()
        log.info("Coffer %s at %s; admin credentials in %s", __version__, settings.base_url, creds)

    def on_shutdown() -> None:
        monitor.stop()
        if local:
            local.stop()
        DBOS.destroy(workflow_completion_timeout_sec=0)

    app = create_app(rt, on_startup=on_startup, on_shutdown=on_shutdown)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    _Server(config, on_exit=rt.wakeup.close).run()
    sys.exit(0)
