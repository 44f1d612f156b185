"""Redis activity counters for ``/metrics`` (``Stats``).

``operations`` are commands: ``total_commands_processed`` of ``INFO stats`` (the
agent's own commands, probes and this reading included). ``connections`` are
``connected_clients`` of ``INFO clients`` less the reading connection itself.
"""

from __future__ import annotations

from coffer.contracts.engine import InstanceSpec
from coffer.engines.base import EngineCounters, InstancePaths
from coffer.engines.redis.connection import (
    connect,
    info_fields,
    raw_info_replies,
    translate_errors,
)
from coffer.errors import EngineError

__all__ = ["RedisStats", "counters_of"]

_TIMEOUT_S = 2.0


class RedisStats:
    def counters(self, paths: InstancePaths, spec: InstanceSpec) -> EngineCounters:
        with (
            translate_errors("reading the activity counters"),
            connect(paths, timeout_s=_TIMEOUT_S) as client,
        ):
            raw_info_replies(client)
            found = info_fields(client, "clients", "stats")
        return counters_of(found)


def counters_of(info: dict[str, str]) -> EngineCounters:
    """The counters in ``INFO clients stats`` fields; ``EngineError`` if one is missing."""
    try:
        clients = int(info["connected_clients"])
        commands = int(info["total_commands_processed"])
    except (KeyError, ValueError) as exc:
        raise EngineError(f"reading the activity counters: INFO lacks {exc}") from None
    return EngineCounters(connections=max(clients - 1, 0), operations=commands, kind="commands")
