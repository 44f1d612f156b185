"""The Redis engine: ``catalog`` (pure), ``config`` and ``acl`` (pure rendering),
``lifecycle`` (files and processes on the host), ``admin`` (ACL users and root),
``backup`` (RDB snapshots with the ACL users, full only), ``replication`` (replicas
following with ``REPLICAOF``).

Only ``build_engine`` lives here, and it imports the host-side modules lazily so that
importing ``coffer.engines.redis.catalog`` in the control plane pulls in no redis-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coffer.engines.base import Engine

__all__ = ["build_engine"]


def build_engine(*, engine_user: str, templates_dir: str) -> Engine:
    """The Redis engine of an agent. Redis needs no template and runs every instance as
    its own ``paths.os_user``, so ``engine_user`` and ``templates_dir`` are not used."""
    from coffer.engines.base import Engine
    from coffer.engines.redis.admin import RedisAdmin
    from coffer.engines.redis.backup import RedisBackups
    from coffer.engines.redis.catalog import CATALOG
    from coffer.engines.redis.guestlogs import RedisGuestLogs
    from coffer.engines.redis.lifecycle import RedisLifecycle
    from coffer.engines.redis.replication import RedisReplication
    from coffer.engines.redis.stats import RedisStats

    lifecycle = RedisLifecycle()
    return Engine(
        catalog=CATALOG,
        lifecycle=lifecycle,
        admin=RedisAdmin,
        backups=RedisBackups(lifecycle),
        replication=RedisReplication(lifecycle),
        stats=RedisStats(),
        guest_logs=RedisGuestLogs(),
    )
