"""ASGI middleware counting every HTTP request into ``Metrics`` (``/metrics``).

Requests are labelled by the route template that matched (``/v1.0/{project_id}/instances``),
never by the concrete path, so ids and names stay out of the labels and the number of
series stays bounded; a request no route matched is labelled ``<unmatched>``. A request
that ends in an unhandled exception counts as status 500.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coffer.services.metrics import Metrics

__all__ = ["UNMATCHED", "RequestMetrics"]

UNMATCHED = "<unmatched>"


class RequestMetrics:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None)
            self._metrics.request(
                str(scope.get("method", "")),
                route if isinstance(route, str) else UNMATCHED,
                status,
                time.perf_counter() - started,
            )
