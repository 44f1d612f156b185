"""Small helpers shared by route modules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import Request, Response

from coffer.api.views import ViewContext, paginate
from coffer.clock import utcnow
from coffer.services.auth import Principal
from coffer.services.runtime import Runtime

PREFIX = "/v1.0/{project_id}"


def view_context(request: Request, rt: Runtime, who: Principal, project_id: str) -> ViewContext:
    return ViewContext(
        host=request.headers.get("host", f"{rt.settings.host}:{rt.settings.port}"),
        project_id=project_id,
        is_admin=who.is_admin,
        now=utcnow(),
        heartbeat_expiry=timedelta(seconds=rt.settings.heartbeat_expiry_s),
    )


def paged(
    request: Request,
    key: str,
    items: list[dict[str, Any]],
    limit: int | None,
    marker: str | None,
    *,
    by: str = "id",
) -> dict[str, Any]:
    """``{key: page}`` with Trove's limit/marker pagination, plus ``links`` to the next
    page when there is one."""
    url = str(request.url.remove_query_params(["limit", "marker"]))
    page, links = paginate(items, limit, marker, url, key=by)
    out: dict[str, Any] = {key: page}
    if links:
        out["links"] = links
    return out


def accepted() -> Response:
    """Trove's empty 202: no body, but a JSON content type."""
    return Response(status_code=202, media_type="application/json")


def no_content() -> Response:
    return Response(status_code=204, media_type="application/json")
