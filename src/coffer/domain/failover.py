"""When a replica set's source counts as lost (pure: the failover monitor applies it).

A source is lost when the control plane cannot see it serving — its host has been silent
longer than ``after``, or its engine is reported down — *and* every replica whose host is
alive reports it no longer receives from the source. The second half keeps a control
plane that merely lost sight of a host (or a heartbeat that is late) from promoting a
replica while the source still serves: the replicas, which talk to the source directly,
must agree. At least one replica must be alive to take over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from coffer.domain.states import ServiceStatus

__all__ = ["Member", "lost_source"]

_DOWN = frozenset({ServiceStatus.CRASHED, ServiceStatus.FAILED, ServiceStatus.SHUTDOWN})


@dataclass(frozen=True)
class Member:
    """What the control plane knows of one member of a replica set."""

    instance_id: str
    #: the last heartbeat of the member's host
    host_seen: datetime | None
    service_status: ServiceStatus
    #: a replica's last report: receiving from its source (None: never reported)
    streaming: bool | None = None


def _alive(member: Member, now: datetime, after: timedelta) -> bool:
    return member.host_seen is not None and now - member.host_seen <= after


def lost_source(
    source: Member, replicas: Sequence[Member], now: datetime, after: timedelta
) -> str | None:
    """Why ``source`` counts as lost (a sentence for the record), or None."""
    if not _alive(source, now, after):
        seen = (
            "never heard from"
            if source.host_seen is None
            else (f"silent for {(now - source.host_seen).total_seconds():.1f} s")
        )
        why = f"its host is {seen}"
    elif source.service_status in _DOWN:
        why = f"its engine is {source.service_status.value}"
    else:
        return None
    alive = [r for r in replicas if _alive(r, now, after)]
    if not alive or any(r.streaming is not False for r in alive):
        return None
    return f"{why}, and its {len(alive)} live replica(s) no longer receive from it"
