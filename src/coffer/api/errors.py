"""Every error leaves as Trove's envelope: ``{"<fault>": {"code": N, "message": "..."}}``."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from coffer.errors import CofferError

log = logging.getLogger("coffer.api")

_FAULTS = {
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
    name = fault or _FAULTS.get(status, "computeFault")
    return JSONResponse(status_code=status, content={name: {"code": status, "message": message}})


def _describe_validation(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = "".join(f"[{p!r}]" if not p.isdigit() else f"[{p}]" for p in loc) or "body"
        parts.append(f"{where} {err.get('msg', 'is invalid')}")
    return "Validation error: " + "; ".join(parts)


def install(app: FastAPI) -> None:
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
        error_id = uuid.uuid4()
        log.exception("unexpected error %s", error_id)
        return envelope(500, f"An unexpected error occurred (error id {error_id}).")
