"""The audit trail (Coffer extension): a project's events, and every project's for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from coffer.api.deps import PrincipalDep, RuntimeDep
from coffer.api.openapi import AUTHENTICATED, replies
from coffer.api.routes.common import PREFIX
from coffer.clock import isoformat
from coffer.contracts.api_v1 import MAX_INT
from coffer.contracts.api_v1_replies import EventList
from coffer.services import events

router = APIRouter(prefix=PREFIX, tags=["events"])

#: events per page (``limit``), and the event id to continue after (``marker``)
Limit = Annotated[int, Query(ge=1, le=events.MAX_LIMIT)]
Marker = Annotated[int | None, Query(ge=0, le=MAX_INT)]


def _view(e: events.EventView) -> dict[str, Any]:
    return {
        "id": e.id,
        "created": isoformat(e.created),
        "actor": e.actor,
        "action": e.action,
        "resource_type": e.resource_type,
        "resource_id": e.resource_id,
        "outcome": e.outcome,
        "detail": e.detail,
    }


def _page(request: Request, items: list[events.EventView], limit: int) -> dict[str, Any]:
    out: dict[str, Any] = {"events": [_view(e) for e in items]}
    if len(items) == limit:
        url = request.url.remove_query_params(["marker"]).include_query_params(marker=items[-1].id)
        out["links"] = [{"rel": "next", "href": str(url)}]
    return out


@router.get("/events", **replies(EventList, *AUTHENTICATED))
def list_events(
    project_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    resource_id: str | None = None,
    since: datetime | None = None,
    limit: Limit = 100,
    marker: Marker = None,
) -> dict[str, Any]:
    """The project's events, newest first (``resource_id``, ``since`` narrow them)."""
    found = events.list_events(
        rt, project_id, resource_id=resource_id, since=since, limit=limit, marker=marker
    )
    return _page(request, found, limit)


@router.get("/mgmt/events", **replies(EventList, *AUTHENTICATED))
def list_all_events(
    project_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    resource_id: str | None = None,
    since: datetime | None = None,
    limit: Limit = 100,
    marker: Marker = None,
    of_project: str | None = None,
) -> dict[str, Any]:
    """Admin: every project's events (``of_project`` narrows them to one)."""
    who.require_admin()
    found = events.list_events(
        rt, of_project, resource_id=resource_id, since=since, limit=limit, marker=marker
    )
    return _page(request, found, limit)
