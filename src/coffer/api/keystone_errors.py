"""Keystone's error shape for the ``/v3`` routes: ``{"error": {"code", "message", "title"}}``.

keystoneauth and the openstack CLI read ``error.message`` from this shape; Trove's envelope
(``api.errors``) stays the rule everywhere else. Routes opt in with
``APIRouter(route_class=KeystoneRoute)``; their ``CofferError``s, request validation
errors and bodies that cannot be parsed then leave in Keystone's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from coffer.errors import CofferError

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def keystone_error(status: int, message: str) -> JSONResponse:
    title = TITLES.get(status, "Error")
    return JSONResponse(
        status_code=status, content={"error": {"code": status, "message": message, "title": title}}
    )


def describe(exc: RequestValidationError) -> str:
    """``Invalid input for field '<path>': <reason>`` for each problem, as Keystone says it."""
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            parts.append("The request body is not valid JSON.")
            continue
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"Invalid input for field '{loc}': {err.get('msg', 'is invalid')}")
    return "; ".join(parts)


class KeystoneRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def keystone_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except CofferError as exc:
                return keystone_error(exc.status, exc.message)
            except RequestValidationError as exc:
                return keystone_error(400, describe(exc))
            except HTTPException as exc:  # a body FastAPI cannot even parse
                return keystone_error(exc.status_code, str(exc.detail))

        return keystone_handler
