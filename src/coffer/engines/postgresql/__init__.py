"""The PostgreSQL engine: ``catalog`` (pure), ``config`` (pure rendering), ``lifecycle``
(files and processes on the host), ``admin`` (users, databases, grants, root),
``backup`` (physical backups and restores), ``walarchive`` (WAL shipping),
``replication`` (streaming replicas, promotion, ``rewind`` of a former primary).

Only ``build_engine`` lives here, and it imports the host-side modules lazily so that
importing ``coffer.engines.postgresql.catalog`` in the control plane pulls in no psycopg.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coffer.engines.base import Engine

__all__ = ["build_engine"]


def build_engine(*, engine_user: str, templates_dir: str) -> Engine:
    """The PostgreSQL engine for an agent whose pre-initialised data directories live under
    ``templates_dir``, owned by ``engine_user``; each instance runs as ``paths.os_user``."""
    from coffer.engines.base import Engine
    from coffer.engines.postgresql.admin import PostgresAdmin
    from coffer.engines.postgresql.backup import PostgresBackups
    from coffer.engines.postgresql.catalog import CATALOG
    from coffer.engines.postgresql.guestlogs import PostgresGuestLogs
    from coffer.engines.postgresql.lifecycle import PostgresLifecycle
    from coffer.engines.postgresql.replication import PostgresReplication
    from coffer.engines.postgresql.stats import PostgresStats
    from coffer.engines.postgresql.walarchive import PostgresLogArchive

    lifecycle = PostgresLifecycle(engine_user=engine_user, templates_dir=Path(templates_dir))
    return Engine(
        catalog=CATALOG,
        lifecycle=lifecycle,
        admin=PostgresAdmin,
        backups=PostgresBackups(lifecycle),
        logs=PostgresLogArchive(),
        replication=PostgresReplication(lifecycle),
        stats=PostgresStats(),
        guest_logs=PostgresGuestLogs(),
    )
