"""The MariaDB engine: ``catalog`` (pure), ``config`` and ``statements`` (pure rendering),
``lifecycle`` (files and processes on the host), ``admin`` (users, databases, grants,
root), ``backup`` (physical backups with mariadb-backup), ``binlog`` (the binary log
shipped for point-in-time recovery, and the roll forward of a restore with it: a target
time T applies every transaction whose commit began at or before T's whole second, UTC),
``replication`` (GTID replicas seeded from a backup, promotion; ``gtid`` parses
positions).

Only ``build_engine`` lives here, and it imports the host-side modules lazily so that
importing ``coffer.engines.mariadb.catalog`` in the control plane pulls in no PyMySQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coffer.engines.base import Engine

__all__ = ["build_engine"]


def build_engine(*, engine_user: str, templates_dir: str) -> Engine:
    """The MariaDB engine for an agent whose pre-initialised data directories live under
    ``templates_dir``, owned by ``engine_user``; each instance runs as ``paths.os_user``."""
    from coffer.engines.base import Engine
    from coffer.engines.mariadb.admin import MariaDBAdmin
    from coffer.engines.mariadb.backup import MariaDBBackups
    from coffer.engines.mariadb.binlog import MariaDBLogArchive
    from coffer.engines.mariadb.catalog import CATALOG
    from coffer.engines.mariadb.guestlogs import MariaDBGuestLogs
    from coffer.engines.mariadb.lifecycle import MariaDBLifecycle
    from coffer.engines.mariadb.replication import MariaDBReplication
    from coffer.engines.mariadb.stats import MariaDBStats

    lifecycle = MariaDBLifecycle(engine_user=engine_user, templates_dir=Path(templates_dir))
    return Engine(
        catalog=CATALOG,
        lifecycle=lifecycle,
        admin=MariaDBAdmin,
        backups=MariaDBBackups(),
        logs=MariaDBLogArchive(),
        replication=MariaDBReplication(),
        stats=MariaDBStats(),
        guest_logs=MariaDBGuestLogs(),
    )
