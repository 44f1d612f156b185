"""Choosing a host and a port for a new instance (inside the creating transaction)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from coffer.clock import utcnow
from coffer.db.models import Host, Instance, PortLease
from coffer.errors import AgentUnavailable


def live_hosts(s: Session, expiry: timedelta) -> list[Host]:
    cutoff = utcnow() - expiry
    return list(
        s.scalars(
            select(Host).where(Host.last_heartbeat.is_not(None), Host.last_heartbeat >= cutoff)
        )
    )


def host_engines(host: Host) -> dict[str, list[str]]:
    try:
        data = json.loads(host.engines or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def choose_host(
    s: Session,
    engine: str,
    version: str,
    expiry: timedelta,
    *,
    avoid: str | None = None,
    crowd: Mapping[str, int] | None = None,
) -> Host:
    """A live host, preferring one with the engine version installed, then one other than
    ``avoid`` (a replica's source: a replica set should survive the loss of a host), then
    one with the fewest of ``crowd`` (host id → members of the same cluster already
    there), then the emptiest.

    A host without the engine is still chosen when no other is live, so the create fails
    with a fault naming what is missing instead of waiting for a host that never comes.
    """
    hosts = live_hosts(s, expiry)
    if not hosts:
        raise AgentUnavailable(
            "no database host is available: no agent has sent a heartbeat recently"
        )

    def load(host: Host) -> int:
        return len(s.scalars(select(PortLease.port).where(PortLease.host_id == host.id)).all())

    def rank(host: Host) -> tuple[int, int, int, int]:
        has_engine = version in host_engines(host).get(engine, [])
        together = (crowd or {}).get(host.id, 0)
        return (0 if has_engine else 1, 1 if host.id == avoid else 0, together, load(host))

    return min(hosts, key=rank)


def lease_port(s: Session, host: Host, instance_id: str, purpose: str | None = None) -> int:
    """Lowest free port of the host's range, recorded in ``port_leases`` for the
    instance's client port, or for another port it needs (``purpose``: e.g. "gcomm").

    The (host, port) primary key makes a concurrent double allocation fail at commit.
    """
    owner = instance_id if purpose is None else f"{instance_id}/{purpose}"
    used = set(s.scalars(select(PortLease.port).where(PortLease.host_id == host.id)))
    for port in range(host.port_min, host.port_max + 1):
        if port not in used:
            s.add(PortLease(host_id=host.id, port=port, instance_id=owner))
            return port
    raise AgentUnavailable(f"host {host.name} has no free port left in its range")


def release_port(s: Session, instance: Instance) -> None:
    """Release every port the instance leased (its client port and any others)."""
    owned = (PortLease.instance_id == instance.id) | PortLease.instance_id.startswith(
        f"{instance.id}/", autoescape=True
    )
    for lease in s.scalars(select(PortLease).where(owned)):
        s.delete(lease)
