"""What of a copied Redis volume is its source's (``RedisLifecycle.adopt_copy``).

An instant clone starts from a point-in-time copy of another instance's whole
``paths.root``, taken while its server ran (as after a power loss). Every file Coffer's
Redis engine, or Redis, writes under the root, and what the clone does with it:

Kept
    ``data/appendonlydir/`` and ``data/dump.rdb``: the dataset. Redis loads the AOF at
    the first start; a torn last command is dropped (``aof-load-truncated``, Redis's
    default yes).

    ``data/users.acl``: the tenant users and ``root``, same passwords and rules.
    Coffer's internal users other than its admin are dropped (the replication account:
    the clone is no source of replicas until ``open_source`` makes it its own), the
    admin user gets the clone's new password, ``default`` stays disabled.

    ``.coffer-prepare.lock``: an empty ``flock`` file, held by nobody in a copy.

Replaced
    ``coffer-admin.secret``: a new random admin password (root-only, 0600): the clone
    shares no secret with its source.

Removed
    ``coffer-replication.json``: no upstream to follow, no fence.

    the cluster marker and ``data/nodes.conf``: a copy of a Redis Cluster member is no
    member (it would claim the member's node id and slots); it starts standalone.

    ``redis.conf``: it names the source's port, files and replication credentials;
    ``configure`` writes the clone's.

    everything in ``run/``: the source's stale ``redis.sock`` and ``redis.pid``.

    ``engine.log``: the source's history; the clone's log starts at its first start
    (and the agent's error messages quote only the clone's lines).

    ``temp-*`` in ``data/`` and ``data/appendonlydir/``: snapshots, AOF rewrites and
    manifests a save of the source left half-written (Redis never loads them);
    ``data/users.acl.tmp-*``: an ``ACL SAVE`` left half-written.

    ``.<file>.coffer-tmp`` (in the root and ``data/``) and ``.data.partial``: an atomic
    write or a restore of the source left half-done (a marker's may hold a password).

Redis keeps no change-log archive, no per-replica state on disk and no backup scratch
files, so nothing else is the source's. The replication identity needs nothing either:
a master picks a new replication id at each start (with the AOF on, none is restored
from the files), so the clone shares no replication history with its source and a
replica pointed at it resyncs in full. Files the agent keeps in the root (``spec.json``)
are not touched.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from coffer.engines.base import InstancePaths
from coffer.engines.host import EngineUser
from coffer.engines.redis.acl import acl_file_with_coffer_users, parse_user_line
from coffer.engines.redis.catalog import ADMIN_USER, is_internal_user
from coffer.engines.redis.config import (
    ACL_FILE,
    CLUSTER_NODES_FILE,
    acl_path,
    aof_dir,
    cluster_path,
    config_path,
    replication_path,
)
from coffer.errors import EngineError

__all__ = ["PARTIAL_DATA_DIR", "check_copy", "forget_source", "own_acl_file"]

#: prefix of Redis's temporary snapshot, AOF rewrite and manifest files
_REDIS_TEMP_PREFIX = "temp-"
#: suffix ``write_private_file`` gives the file it renames into place
_ATOMIC_WRITE_SUFFIX = ".coffer-tmp"
#: where ``RedisLifecycle.prepare_from`` builds a data directory before renaming it
PARTIAL_DATA_DIR = ".data.partial"


def check_copy(paths: InstancePaths, user: EngineUser) -> None:
    """``EngineError`` unless ``paths.data_dir`` is a Redis data directory (a real
    directory holding an ACL file of user lines) handed over to ``user``. Reads only."""
    data_dir = paths.data_dir
    try:
        info = os.lstat(data_dir)
    except FileNotFoundError:
        raise EngineError(f"{str(data_dir)!r} does not exist: nothing was copied there") from None
    if not stat.S_ISDIR(info.st_mode):
        raise EngineError(f"{str(data_dir)!r} is not a directory")
    _check_acl_file(acl_path(paths))
    if info.st_uid != user.uid:
        raise EngineError(
            f"{str(data_dir)!r} belongs to uid {info.st_uid}, not to the instance account "
            f"{user.name!r}: hand the copied files over to it first"
        )


def forget_source(paths: InstancePaths) -> None:
    """Remove the source's files the clone must not have (see the module docstring);
    keeps the dataset, the ACL file and the run directory itself. Idempotent."""
    cluster_files = (cluster_path(paths), paths.data_dir / CLUSTER_NODES_FILE)
    for path in (replication_path(paths), config_path(paths), paths.log_file, *cluster_files):
        path.unlink(missing_ok=True)
    shutil.rmtree(paths.root / PARTIAL_DATA_DIR, ignore_errors=True)
    if paths.run_dir.is_dir() and not paths.run_dir.is_symlink():
        for entry in paths.run_dir.iterdir():
            _remove(entry)
    for directory in (paths.root, paths.data_dir):
        for entry in directory.glob(f".*{_ATOMIC_WRITE_SUFFIX}"):
            _remove(entry)
    for entry in paths.data_dir.glob(f"{ACL_FILE}.tmp-*"):
        _remove(entry)
    for directory in (paths.data_dir, aof_dir(paths)):
        if directory.is_dir():
            for entry in directory.glob(f"{_REDIS_TEMP_PREFIX}*"):
                _remove(entry)


def own_acl_file(text: str, admin_password: str) -> str:
    """The clone's ACL file from its source's ``text``: tenant users and ``root`` kept
    as they are, Coffer's internal users but the admin dropped, the admin holding
    ``admin_password``, ``default`` disabled. Pure."""
    kept = [
        line
        for line in text.splitlines()
        if (parsed := parse_user_line(line)) is None
        or not is_internal_user(parsed[0])
        or parsed[0] == ADMIN_USER
    ]
    return acl_file_with_coffer_users("".join(f"{line}\n" for line in kept), admin_password)


def _check_acl_file(path: Path) -> None:
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            raise EngineError(f"{str(path)!r} is not a regular file: not a Redis data directory")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EngineError(
            f"{str(path.parent)!r} is not a Redis data directory (it has no {ACL_FILE})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError(f"cannot read {str(path)!r}: {exc}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or any(parse_user_line(line) is None for line in lines):
        raise EngineError(f"{str(path)!r} is not a Redis ACL file: not a Redis data directory")


def _remove(entry: Path) -> None:
    """Unlink ``entry``, a directory with everything in it (symlinks not followed)."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink(missing_ok=True)
