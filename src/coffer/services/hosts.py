"""Read views of the database hosts for admins."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from coffer.clock import isoformat, utcnow
from coffer.db.models import Host, PortLease
from coffer.services import placement
from coffer.services.runtime import Runtime


def list_hosts(rt: Runtime) -> list[dict[str, Any]]:
    expiry = timedelta(seconds=rt.settings.heartbeat_expiry_s)
    now = utcnow()
    with rt.sessions() as s:
        out = []
        for host in s.scalars(select(Host).order_by(Host.name)):
            used = s.scalar(
                select(func.count()).select_from(PortLease).where(PortLease.host_id == host.id)
            )
            alive = host.last_heartbeat is not None and now - host.last_heartbeat <= expiry
            out.append(
                {
                    "id": host.id,
                    "name": host.name,
                    "address": host.address,
                    "alive": alive,
                    "last_heartbeat": isoformat(host.last_heartbeat),
                    "engines": placement.host_engines(host),
                    "facts": json.loads(host.facts or "{}"),
                    "instances": int(used or 0),
                    "ports": f"{host.port_min}-{host.port_max}",
                }
            )
        return out
