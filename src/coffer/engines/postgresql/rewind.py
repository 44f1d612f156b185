"""``pg_rewind``: a stopped former primary made fit to follow the primary that replaced it.

After a failover the old primary may hold WAL its successor never received (it went on
writing, or just wrote its shutdown checkpoint after the successor's promotion): it has
diverged, and as a replica it would stop with "requested timeline is not a child of
this server's history". ``pg_rewind`` (run as the instance's account, the engine
stopped) copies from the running new primary every block changed since their histories
forked, and leaves a ``backup_label`` so that the next start replays the new primary's
WAL from before the fork. Transactions only the old primary committed after the fork are
lost, which is what a failover means. When nothing diverged it changes nothing.

Needs: the old primary ran with ``wal_log_hints = on`` (``config`` always renders it;
templates have no data checksums) up to its last shutdown; its WAL from the last common
checkpoint on is still in its ``pg_wal``; the new primary lets the replication role in
over TCP to its ``postgres`` database and the role may run the file functions
``pg_rewind`` reads with (``replication.open_source`` grants them). The password goes in
a 0600 password file on the volume for the tool's run only. The rewound directory gets
the new primary's configuration files (``configure`` rewrites Coffer's own), and the
replication slots the old primary kept for its own replicas are dropped (they would keep
WAL on it for no one).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from coffer.engines.base import InstancePaths
from coffer.engines.host import EngineUser, run_tool, write_private_file
from coffer.engines.postgresql.backup import archived_wal_files
from coffer.engines.postgresql.clone import drop_replication_slots
from coffer.engines.postgresql.config import REWIND_PASSFILE
from coffer.engines.postgresql.upstream import UpstreamRecord, render_passfile
from coffer.errors import EngineError

__all__ = ["rewind"]

#: the source database ``pg_rewind`` connects to (every role may connect to it)
_SOURCE_DATABASE = "postgres"
_STDERR_TAIL = 1500


def rewind(
    paths: InstancePaths, record: UpstreamRecord, password: str, *, user: EngineUser, bin_dir: Path
) -> str:
    """Rewind the stopped instance at ``paths`` onto the running upstream ``record``; a
    one-line summary. Blocks while blocks are copied. ``EngineError`` with the tool's
    reason (then the instance must be re-seeded from a new backup of the primary)."""
    _bring_back_archived_wal(paths, user)
    passfile = paths.root / REWIND_PASSFILE
    write_private_file(passfile, render_passfile(record.user, password), user)
    conninfo = (
        f"host={record.host} port={record.port} user={record.user} dbname={_SOURCE_DATABASE} "
        f"passfile={passfile} connect_timeout=10"
    )
    argv = [
        str(bin_dir / "pg_rewind"),
        f"--target-pgdata={paths.data_dir}",
        f"--source-server={conninfo}",
    ]
    try:
        result = run_tool(user, argv, extra_env={"PGPASSFILE": str(passfile)})
    finally:
        passfile.unlink(missing_ok=True)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise EngineError(
            f"pg_rewind could not make this former primary follow {record.host}:{record.port} "
            f"(exit {result.returncode}): {output[-_STDERR_TAIL:]}; re-seed it from a new "
            "backup of the primary"
        )
    drop_replication_slots(paths.data_dir)
    if "no rewind required" in output:
        return "pg_rewind: no rewind required (the histories had not diverged)"
    return "pg_rewind: rewound onto the new primary"


def _bring_back_archived_wal(paths: InstancePaths, user: EngineUser) -> None:
    """Copy the instance's archived WAL that ``pg_wal`` no longer holds back into it:
    ``pg_rewind`` reads the target's WAL from the last common checkpoint on, and a
    checkpoint since may have recycled those segments after they were archived."""
    wal = paths.data_dir / "pg_wal"
    for archived in archived_wal_files(paths):
        target = wal / archived.name
        if target.exists() or archived.name.endswith(".backup"):
            continue
        temporary = wal / f".{archived.name}.coffer-tmp"
        shutil.copyfile(archived, temporary)
        os.chown(temporary, user.uid, user.gid)
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
