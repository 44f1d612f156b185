"""Instant clones: a point-in-time copy of another instance's volume made this instance's own.

The agent copies the source's volume while its engine runs (a filesystem freeze and a
reflink copy: crash-consistent, as after a power loss), hands the files to the clone's
account and calls ``Lifecycle.adopt_copy`` (``adopt_copy`` here) with the engine stopped,
then ``configure``, start, ``bootstrap`` as for a restored instance.

What the copy holds, and what becomes of it:

* ``data/`` — kept: the source's databases, roles (with their passwords), grants,
  ``postgresql.auto.conf`` (``ALTER SYSTEM``) and ``pg_wal``. ``coffer.conf`` and
  ``pg_hba.conf`` are kept until ``configure`` rewrites them.

  - ``postmaster.pid`` — removed: it names the source's postmaster, alive on the same
    host, and PostgreSQL refuses to start while that pid lives.
  - ``standby.signal`` — removed: a clone of a replica follows no one.
  - ``pg_replslot/*`` — removed: the slots the source kept for its replicas (and any
    logical slot) would keep WAL on the clone for consumers that never come to it.
  - ``recovery.signal`` — written (see "First start"), unless a restore's recovery was
    pending on the source: that one is kept, with its ``restore_wal/`` and target, and
    the clone finishes the same restore.
  - ``pg_wal/archive_status/*.ready`` — kept: segments the source had not archived yet
    are let go unarchived by ``archive_command`` (the clone's archive is not enabled).
  - temporary files of an interrupted atomic write (``.*.coffer-tmp``) — removed (here,
    in the root and in ``pg_wal``): one may hold a password being written.
  - ``backup_label`` — PostgreSQL 15 writes none in the data directory (non-exclusive
    backups), so a copy taken during a backup has none either.

* ``run/`` (the source's unix socket and its lock file naming the live postmaster) —
  reset: removed and made again, empty and private.
* ``upstream.json``, ``upstream.pgpass`` (what a replica follows, with the replication
  password) — removed.
* ``fenced`` (a switchover's fence) — removed: the clone accepts writes.
* ``.rewind.pgpass`` (a password file that exists while ``pg_rewind`` runs) — removed.
* ``wal_archive/`` (the source's archived WAL and its ``.enabled`` marker) — reset: made
  again, empty. The clone archives nothing until its own first full backup enables it,
  so none of the source's log is ever shipped as the clone's.
* ``restore_wal/`` — kept with a pending restore (above); otherwise a finished restore's
  leftover (perhaps with a recovery target the clone must not apply) and removed, then
  made again, empty, for the first start.
* ``adopted-copy`` — written last, naming the instance that adopted the copy: a later
  call for the same instance (a retried create, after the clone ran, took backups or
  became a replica) changes nothing; a copy of the clone names its source and is adopted.
* ``.coffer-prepare.lock`` — kept (an empty file; ``flock`` locks are not copied).
* ``engine.log`` and the agent's own files — not this engine's: left as they are.
* ``.data.partial`` / ``.restore_wal.partial`` — none: a restore renames them into place
  before the data directory exists, so no copy of a running instance has them.

First start
    ``recovery.signal`` with an empty ``restore_wal/``: ``configure`` renders the
    restore's recovery settings (``restore_command`` from that empty directory,
    ``hot_standby = off``). PostgreSQL replays everything in ``pg_wal`` (first as crash
    recovery when the copy was of a primary: its control file has no consistency point),
    finds nothing more to restore, and promotes to a new timeline; ``bootstrap`` waits for
    that and removes ``restore_wal/``. The new timeline marks where the clone's history
    forked from the source's: an incremental backup on one of the source's backups is
    refused (another timeline), and ``pg_rewind`` sees the two as diverged.

Kept on purpose: the clone is the same database cluster (system identifier) as its
source, as a restore of its backups is; its roles include the replication role (its
password is replaced when the clone gets replicas of its own). Not handled: logical
replication subscriptions a tenant superuser created are copied enabled, as in a
restore, and connect to their publisher once the clone runs; unlogged tables are
emptied by the crash recovery.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import InstancePaths
from coffer.engines.host import EngineUser, make_private_dir, write_private_file
from coffer.engines.postgresql.config import (
    FENCE_MARKER,
    MAIN_FILE,
    RECOVERY_SIGNAL,
    REWIND_PASSFILE,
    STANDBY_SIGNAL,
    restore_wal_dir,
    wal_archive_dir,
)
from coffer.engines.postgresql.upstream import forget_upstream
from coffer.engines.templates import fsync_dir
from coffer.errors import EngineError

__all__ = ["adopt_copied_files", "adopted", "check_copy", "drop_replication_slots"]

#: the suffix ``host.write_private_file`` gives its temporary files
_TEMPORARY_SUFFIX = ".coffer-tmp"
#: in the instance's root once a copy is adopted: the adopting instance's id
_ADOPTED_MARKER = "adopted-copy"


def adopted(paths: InstancePaths, spec: InstanceSpec) -> bool:
    """Whether ``adopt_copied_files`` already finished for this very instance."""
    try:
        owner = (paths.root / _ADOPTED_MARKER).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return owner == spec.instance_id


def check_copy(paths: InstancePaths, spec: InstanceSpec, user: EngineUser) -> None:
    """``EngineError`` unless ``paths.data_dir`` is a PostgreSQL data directory of
    ``spec.version`` owned by ``user`` (the agent hands the copy over first). Reads only."""
    data_dir = paths.data_dir
    needed = (data_dir / "PG_VERSION", data_dir / "global" / "pg_control", data_dir / MAIN_FILE)
    if data_dir.is_symlink() or not all(path.is_file() for path in needed):
        raise EngineError(
            f"{str(data_dir)!r} is not a PostgreSQL data directory (PG_VERSION, "
            "global/pg_control and postgresql.conf are needed): only a copy of a PostgreSQL "
            "instance's volume can be adopted"
        )
    version = (data_dir / "PG_VERSION").read_text(encoding="ascii", errors="replace").strip()
    if version != spec.version:
        raise EngineError(
            f"the copied data directory is of PostgreSQL {version}, the instance is of "
            f"PostgreSQL {spec.version}: clone into an instance of the source's version"
        )
    owner = data_dir.stat().st_uid
    if owner != user.uid:
        raise EngineError(
            f"the copied data directory is owned by uid {owner}, not by the instance's "
            f"account {user.name!r}: hand the copy over to that account first"
        )


def adopt_copied_files(paths: InstancePaths, spec: InstanceSpec, user: EngineUser) -> None:
    """Remove, reset or keep each of the source's files (see the module notes) so that
    the next start makes a standalone primary, then mark the copy adopted by
    ``spec.instance_id``. Idempotent until then (a step left undone by a crash is done
    again); the engine must be stopped and ``check_copy`` passed; the caller holds the
    instance's prepare lock."""
    root, data_dir = paths.root, paths.data_dir
    _remove(paths.run_dir)
    make_private_dir(paths.run_dir, user)
    (data_dir / "postmaster.pid").unlink(missing_ok=True)
    forget_upstream(paths)
    for name in (FENCE_MARKER, REWIND_PASSFILE):
        _remove(root / name)
    for directory in (root, data_dir, data_dir / "pg_wal"):
        for leftover in directory.glob(f".*{_TEMPORARY_SUFFIX}"):
            _remove(leftover)
    drop_replication_slots(data_dir)
    archive = wal_archive_dir(root)
    _remove(archive)
    make_private_dir(archive, user)
    _prepare_first_start(paths, user)
    fsync_dir(data_dir)
    write_private_file(root / _ADOPTED_MARKER, f"{spec.instance_id}\n", user)
    fsync_dir(root)


def drop_replication_slots(data_dir: Path) -> None:
    """Remove every replication slot of the stopped instance (one directory each)."""
    slots = data_dir / "pg_replslot"
    if slots.is_dir() and not slots.is_symlink():
        for entry in slots.iterdir():
            _remove(entry)


def _prepare_first_start(paths: InstancePaths, user: EngineUser) -> None:
    """``recovery.signal`` and an empty ``restore_wal/`` (a pending restore's kept), and
    no ``standby.signal``: the first start recovers, then promotes to a new timeline."""
    signal = paths.data_dir / RECOVERY_SIGNAL
    restore_dir = restore_wal_dir(paths.root)
    if not signal.is_file() or restore_dir.is_symlink() or not restore_dir.is_dir():
        _remove(restore_dir)
    make_private_dir(restore_dir, user)
    if not signal.is_file():
        write_private_file(signal, "", user)
    (paths.data_dir / STANDBY_SIGNAL).unlink(missing_ok=True)


def _remove(path: Path) -> None:
    """Remove a file, symlink (not its target) or directory tree, if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
