"""The audit trail (Coffer extension): who did what to which resource, and what the
system did by itself (failover, recovery, verification, engine restarts), per project.

Requests are recorded by the API's middleware (``record_request``) after the response,
whatever its status: a refused request is an event too. The system's own actions are
recorded by the code that takes them, in the transaction that changes the state
(``record``), so an event is never written for a change that was rolled back. Details
never hold a password: callers pass messages meant for users (faults, reasons).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coffer.clock import utcnow
from coffer.db.models import Event
from coffer.errors import BadRequest
from coffer.services.runtime import Runtime

__all__ = ["SYSTEM", "EventView", "list_events", "record", "record_request", "request_action"]

SYSTEM = "system"
_DETAIL_MAX = 2000
MAX_LIMIT = 1000
_PARAM = re.compile(r"\{[^}]+\}")
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


@dataclass(frozen=True)
class EventView:
    id: int
    created: datetime
    actor: str
    action: str
    resource_type: str
    resource_id: str | None
    outcome: str
    detail: str


def record(
    s: Session,
    *,
    project_id: str,
    action: str,
    resource_type: str,
    resource_id: str | None,
    outcome: str,
    detail: str = "",
    actor: str = SYSTEM,
) -> None:
    """Add an event to ``s``'s transaction. Text longer than its column is cut (a
    request's path may name an id of any length; the full path stays in ``detail``)."""
    s.add(
        Event(
            project_id=project_id[:32],
            created=utcnow(),
            actor=actor[:300],
            action=action[:120],
            resource_type=resource_type[:40],
            resource_id=resource_id[:64] if resource_id is not None else None,
            outcome=outcome[:40],
            detail=detail[:_DETAIL_MAX],
        )
    )


def request_action(method: str, route: str) -> tuple[str, str] | None:
    """``(action, resource type)`` of a state-changing request to ``route`` (a route
    template under ``/v1.0/{project_id}``), or None for one that changes nothing.
    ``POST /instances`` → ``instance.create``; ``POST /instances/{id}/action`` →
    ``instance.action``; ``DELETE /instances/{id}/users/{name}`` → ``instance.user.delete``;
    ``POST /clusters/{id}`` → ``cluster.action``."""
    verb = _VERBS.get(method)
    prefix = "/v1.0/{project_id}/"
    if verb is None or not route.startswith(prefix):
        return None
    parts = route.removeprefix(prefix).split("/")
    words = [_singular(p.replace("-", "_")) for p in parts if not _PARAM.fullmatch(p)]
    if not words:
        return None
    if words[-1] == "action" or (method == "POST" and _PARAM.fullmatch(parts[-1])):
        words = [w for w in words if w != "action"] + ["action"]
    else:
        words.append(verb)
    return ".".join(words), words[0]


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def record_request(
    rt: Runtime,
    *,
    project_id: str,
    actor: str,
    method: str,
    route: str,
    path: str,
    path_params: dict[str, Any],
    status: int,
    created_id: str | None,
) -> None:
    """Record one state-changing request (the middleware's call)."""
    found = request_action(method, route)
    if found is None:
        return
    action, resource_type = found
    ids = [str(v) for k, v in path_params.items() if k != "project_id"]
    resource_id = ids[0] if ids else created_id
    with rt.sessions.begin() as s:
        record(
            s,
            project_id=project_id,
            actor=actor,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            outcome=str(status),
            detail=f"{method} {path}",
        )


def list_events(
    rt: Runtime,
    project_id: str | None,
    *,
    resource_id: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    marker: int | None = None,
) -> list[EventView]:
    """Events newest first, of one project (None: every project), optionally of one
    resource or since a moment; ``marker``: continue after that event id."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    q = select(Event).order_by(Event.id.desc()).limit(limit)
    if project_id is not None:
        q = q.where(Event.project_id == project_id)
    if resource_id is not None:
        q = q.where(Event.resource_id == resource_id)
    if since is not None:
        q = q.where(Event.created >= since)
    if marker is not None:
        q = q.where(Event.id < marker)
    with rt.sessions() as s:
        rows = s.scalars(q).all()
    return [
        EventView(
            e.id, e.created, e.actor, e.action, e.resource_type, e.resource_id, e.outcome, e.detail
        )
        for e in rows
    ]
