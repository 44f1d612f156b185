"""What ``/openapi.json`` says about replies: success bodies, error envelopes, the token.

Conventions for route modules (new routes follow them too)::

    from coffer.api.openapi import AUTHENTICATED, replies
    from coffer.contracts.api_v1_replies import InstanceReply

    @router.get("/instances/{instance_id}", **replies(InstanceReply, *AUTHENTICATED, 404))
    def show_instance(...) -> dict[str, Any]: ...

    @router.delete("/instances/{instance_id}", **replies(None, *AUTHENTICATED, 404, 422,
                                                          status=202))
    def delete_instance(...) -> Response: ...

- ``replies(model, *errors, status=200)`` gives the decorator's ``status_code``,
  ``response_model=None`` (the view's dict is sent as built, never filtered) and
  ``responses``: ``model`` (a ``coffer.contracts.api_v1_replies`` model, or ``None`` for
  an empty body) under ``status``, and Trove's error envelope under each error code.
- List every status the route can answer with. ``AUTHENTICATED`` = 400 (request
  validation), 401 (no or unknown token), 403 (another project's path, or not admin);
  add 404 for an unknown id, 409/413/422/501/500/503 as the service raises them
  (``coffer.errors`` maps exceptions to codes).
- A new reply body is a closed model in ``coffer.contracts.api_v1_replies`` (see its
  docstring); ``tests/unit/test_openapi_replies.py`` checks views against their models.
  A reply that is not JSON declares ``responses`` with its media type (``routes.metrics``).
- Keystone routes (``/v3``) use ``keystone_replies``, whose errors have Keystone's shape.
- A new public router joins the tuple in ``api.app.create_app``, which includes it with
  ``deps.refuse_nul`` (400 for NUL characters in any request text).
- A route with parameters that declares no error at all gets a ``default`` Trove error
  reply, so the document stays true; ``tests/unit/test_openapi_document.py`` asks for
  explicit codes.

``install(app)`` makes ``app.openapi()`` build the document with the error schemas in
``components`` and without FastAPI's invented 422 (request validation answers 400 here).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from coffer.api.errors import FAULTS
from coffer.api.keystone_errors import TITLES

#: statuses every route behind ``X-Auth-Token`` can answer with
AUTHENTICATED = (400, 401, 403)
#: routes that reach the instance's agent: the engine failed (500), no agent answered
#: (503), the datastore has no such operation (501)
AGENT = (500, 501, 503)
#: name of the security scheme (``coffer.api.deps``) in the document
TOKEN_SCHEME = "X-Auth-Token"

_JSON = "application/json"
_REF = "#/components/schemas/"
_ANY_FAULT = "TroveFault"


def _trove_fault_name(status: int) -> str:
    return f"TroveFault{status}"


def _keystone_error_name(status: int) -> str:
    return f"KeystoneError{status}"


def _described(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": {"$ref": _REF + schema}}}}


def _success(model: type[BaseModel] | None, description: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if model is not None:
        out["model"] = model
    return out


def replies(
    model: type[BaseModel] | None, *errors: int, status: int = 200, description: str = "OK"
) -> dict[str, Any]:
    """Keyword arguments for a route decorator: ``model`` under ``status`` (``None``: no
    body), Trove's error envelope under each of ``errors`` (codes of ``api.errors``)."""
    responses: dict[int | str, dict[str, Any]] = {status: _success(model, description)}
    for code in errors:
        responses[code] = _described(f"{FAULTS[code]} ({code})", _trove_fault_name(code))
    return {"status_code": status, "response_model": None, "responses": responses}


def keystone_replies(
    model: type[BaseModel] | None,
    *errors: int,
    status: int = 200,
    description: str = "OK",
    subject_token: bool = False,
    bodies: bool = True,
) -> dict[str, Any]:
    """As ``replies``, with Keystone's ``{"error": {...}}`` shape for the errors.
    ``subject_token``: the success reply carries the token in ``X-Subject-Token``;
    ``bodies=False`` for HEAD, whose replies have none."""
    responses: dict[int | str, dict[str, Any]] = {status: _success(model, description)}
    if subject_token:
        responses[status]["headers"] = {
            "X-Subject-Token": {"required": True, "schema": {"type": "string"}}
        }
    for code in errors:
        responses[code] = (
            _described(TITLES[code], _keystone_error_name(code))
            if bodies
            else {"description": TITLES[code]}
        )
    return {"status_code": status, "response_model": None, "responses": responses}


def _trove_fault(status: int | None) -> dict[str, Any]:
    """``{"<fault>": {"code": status, "message": "..."}}``; any fault when ``status`` is None."""
    detail: dict[str, Any] = {
        "type": "object",
        "required": ["code", "message"],
        "additionalProperties": False,
        "properties": {
            "code": {"type": "integer"} if status is None else {"const": status},
            "message": {"type": "string", "minLength": 1},
        },
    }
    if status is None:
        return {
            "title": "Trove error",
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": detail,
        }
    return {
        "title": f"Trove error {status}",
        "type": "object",
        "required": [FAULTS[status]],
        "additionalProperties": False,
        "properties": {FAULTS[status]: detail},
    }


def _keystone_error(status: int) -> dict[str, Any]:
    return {
        "title": f"Keystone error {status}",
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "title"],
                "additionalProperties": False,
                "properties": {
                    "code": {"const": status},
                    "message": {"type": "string", "minLength": 1},
                    "title": {"const": TITLES[status]},
                },
            }
        },
    }


def error_schemas() -> dict[str, dict[str, Any]]:
    """Every error envelope, by component name."""
    out = {_trove_fault_name(code): _trove_fault(code) for code in FAULTS}
    out[_ANY_FAULT] = _trove_fault(None)
    out.update({_keystone_error_name(code): _keystone_error(code) for code in TITLES})
    return out


def _tidy(operation: dict[str, Any]) -> None:
    """Drop FastAPI's 422 (validation errors are 400 here); give an operation that
    declares no error the generic Trove error as ``default``."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    invented = responses.get("422", {}).get("content", {}).get(_JSON, {}).get("schema", {})
    if invented.get("$ref") != _REF + "HTTPValidationError":
        return
    del responses["422"]
    if not any(code.startswith(("4", "5")) for code in responses):
        responses["default"] = _described("Trove error", _ANY_FAULT)


def document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app`` (pure: built from its routes each call)."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=(
            "Coffer: OpenStack Trove v1.0 API, Coffer's extensions and a Keystone v3 "
            'subset. Errors use Trove\'s envelope, {"<fault>": {"code", "message"}}; '
            'under /v3, Keystone\'s {"error": {"code", "message", "title"}}.'
        ),
        routes=app.routes,
    )
    for path in doc.get("paths", {}).values():
        for operation in path.values():
            _tidy(operation)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(error_schemas())
    return doc


def install(app: FastAPI) -> None:
    """Serve ``document(app)`` at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
