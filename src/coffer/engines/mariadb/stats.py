"""MariaDB activity counters for ``/metrics`` (``Stats``).

``operations`` are queries: the ``Questions`` status counter (statements sent by
clients, the agent's own included; statements inside stored programs are not counted).
``Com_commit`` was not chosen: autocommit statements, most of the traffic of many
applications, never increment it. ``connections`` are ``Threads_connected`` less the
reading session.
"""

from __future__ import annotations

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import EngineCounters, InstancePaths
from coffer.engines.mariadb.connection import connect, translate_errors
from coffer.errors import EngineError

__all__ = ["MariaDBStats"]

_TIMEOUT_S = 2
_COUNTERS = "SHOW GLOBAL STATUS WHERE Variable_name IN ('Threads_connected', 'Questions')"


class MariaDBStats:
    def counters(self, paths: InstancePaths, spec: InstanceSpec) -> EngineCounters:
        with (
            translate_errors("reading the activity counters"),
            connect(paths, timeout_s=_TIMEOUT_S, read_timeout_s=_TIMEOUT_S) as session,
        ):
            found = {str(name): str(value) for name, value in session.execute(_COUNTERS)}
        try:
            threads = int(found["Threads_connected"])
            questions = int(found["Questions"])
        except (KeyError, ValueError) as exc:
            raise EngineError(f"reading the activity counters: status lacks {exc}") from None
        return EngineCounters(connections=max(threads - 1, 0), operations=questions, kind="queries")
