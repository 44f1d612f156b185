"""``GET /metrics``: Prometheus text format, without authentication (Prometheus scrapes
it). It shows no secret: only ids, names, projects, datastores, route templates and
workflow names as labels, and counts, seconds and bytes as values
(``coffer.services.metrics``). Restrict who reaches it at the network level if the
names of instances and projects are themselves sensitive.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from coffer.api.deps import RuntimeDep
from coffer.services import metrics

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def scrape(rt: RuntimeDep) -> Response:
    return Response(content=metrics.scrape(rt), media_type=metrics.CONTENT_TYPE)
