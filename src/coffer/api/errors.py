"""Every error leaves as Trove's envelope: ``{"<fault>": {"code": N, "message": "..."}}``.

An exception no handler takes becomes a 500 envelope inside the middleware stack
(``UnexpectedErrors``), so the server answers and keeps the connection open. Starlette's
own last-resort handler answers too, but then re-raises, and uvicorn closes a connection
whose application raised: the client's next request on that keep-alive connection would
fail with a reset.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coffer.errors import CofferError

log = logging.getLogger("coffer.api")

#: the fault name of each status in Trove's envelope
FAULTS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflict",
    413: "overLimit",
    415: "badMediaType",
    422: "unprocessableEntity",
    500: "instanceFault",
    501: "notImplemented",
    503: "serviceUnavailable",
}


def envelope(status: int, message: str, fault: str | None = None) -> JSONResponse:
    name = fault or FAULTS.get(status, "computeFault")
    return JSONResponse(status_code=status, content={name: {"code": status, "message": message}})


def _describe_validation(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = "".join(f"[{p!r}]" if not p.isdigit() else f"[{p}]" for p in loc) or "body"
        parts.append(f"{where} {err.get('msg', 'is invalid')}")
    return "Validation error: " + "; ".join(parts)


def _unexpected_envelope() -> JSONResponse:
    error_id = uuid.uuid4()
    log.exception("unexpected error %s", error_id)
    return envelope(500, f"An unexpected error occurred (error id {error_id}).")


class UnexpectedErrors:
    """ASGI middleware: an exception raised before the reply started is logged (with an
    error id) and answered with the 500 envelope; after it started, it propagates."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def watching(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, receive, watching)
        except Exception:
            if started:
                raise
            await _unexpected_envelope()(scope, receive, send)


def install(app: FastAPI) -> None:
    """The exception handlers, and ``UnexpectedErrors`` as the innermost middleware (call
    before adding other middleware, so they see its 500 as a reply)."""
    app.add_middleware(UnexpectedErrors)

    @app.exception_handler(CofferError)
    async def _coffer(_: Request, exc: CofferError) -> JSONResponse:
        return envelope(exc.status, exc.message, exc.fault)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return envelope(400, _describe_validation(exc))

    @app.exception_handler(ValidationError)
    async def _model_validation(_: Request, exc: ValidationError) -> JSONResponse:
        return envelope(400, _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail) if exc.status_code != 404 else "The resource could not be found."
        return envelope(exc.status_code, message)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        """Last resort, for an exception raised in an outer middleware."""
        return _unexpected_envelope()
