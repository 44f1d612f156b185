"""PostgreSQL activity counters for ``/metrics`` (``Stats``).

``operations`` are transactions: ``xact_commit + xact_rollback`` summed over every
database in ``pg_stat_database``. PostgreSQL publishes a session's counts when it goes
idle (at most about a second late), and the agent's own sessions (probes, this reading)
count too, so an idle instance shows a small background rate. ``connections`` are the
client backends in ``pg_stat_activity`` other than the reading session.
"""

from __future__ import annotations

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import EngineCounters, InstancePaths
from coffer.engines.postgresql.connection import connect, translate_errors

__all__ = ["PostgresStats"]

_TIMEOUT_S = 2
_COUNTERS = """
SELECT
  (SELECT count(*) FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()),
  (SELECT coalesce(sum(xact_commit + xact_rollback), 0) FROM pg_stat_database)
"""


class PostgresStats:
    def counters(self, paths: InstancePaths, spec: InstanceSpec) -> EngineCounters:
        with (
            translate_errors("reading the activity counters"),
            connect(
                paths, spec, timeout_s=_TIMEOUT_S, statement_timeout_ms=_TIMEOUT_S * 1000
            ) as conn,
        ):
            row = conn.execute(_COUNTERS).fetchone()
        connections, transactions = row if row is not None else (0, 0)
        return EngineCounters(
            connections=int(connections), operations=int(transactions), kind="transactions"
        )
