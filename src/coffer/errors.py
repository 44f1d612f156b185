"""Coffer's exception tree. Every error a caller may see derives from ``CofferError``.

    CofferError                      (400 badRequest unless a subclass says otherwise)
    ├── BadRequest                   400  invalid input, duplicate names, no-op changes
    ├── Unauthorized                 401  missing or unknown token
    ├── Forbidden                    403  valid token, not allowed here (tenant mismatch, role)
    ├── NotFound                     404  unknown id (the CLI's name lookup relies on 404)
    ├── Conflict                     409
    ├── OverLimit                    413  quota exceeded
    ├── UnprocessableEntity          422  the resource is busy / not in a state to act
    ├── NotImplementedByDatastore    501  the datastore has no notion of the operation
    ├── EngineError                  500  the engine failed doing what was asked
    ├── StorageError                 500  the object store failed (Trove's instanceFault)
    │   └── StorageNotFound          500  the object is missing from the store
    ├── IntegrityError               409  a stored backup is tampered with or truncated
    └── AgentUnavailable             503  no agent answered in time

Engine-side errors (raised by engines, carried over the agent channel by ``code``) map onto
the same tree, so a duplicate user found by PostgreSQL reaches the user as a 400.
"""

from __future__ import annotations


class CofferError(Exception):
    """Root of every error Coffer reports; ``status`` and ``fault`` shape the HTTP reply."""

    status: int = 400
    fault: str = "badRequest"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(CofferError):
    status, fault = 400, "badRequest"


class Unauthorized(CofferError):
    status, fault = 401, "unauthorized"


class Forbidden(CofferError):
    status, fault = 403, "forbidden"


class NotFound(CofferError):
    status, fault = 404, "itemNotFound"


class Conflict(CofferError):
    status, fault = 409, "conflict"


class OverLimit(CofferError):
    status, fault = 413, "overLimit"


class UnprocessableEntity(CofferError):
    status, fault = 422, "unprocessableEntity"


class NotImplementedByDatastore(CofferError):
    status, fault = 501, "notImplemented"


class EngineError(CofferError):
    status, fault = 500, "instanceFault"


class StorageError(CofferError):
    status, fault = 500, "instanceFault"


class StorageNotFound(StorageError):
    pass


class IntegrityError(CofferError):
    """Trove's ``RestoreBackupIntegrityError``: the bytes read back are not those written."""

    status, fault = 409, "conflict"


class AgentUnavailable(CofferError):
    status, fault = 503, "serviceUnavailable"


_BY_NAME: dict[str, type[CofferError]] = {
    cls.__name__: cls
    for cls in (
        CofferError,
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        OverLimit,
        UnprocessableEntity,
        NotImplementedByDatastore,
        EngineError,
        StorageError,
        StorageNotFound,
        IntegrityError,
        AgentUnavailable,
    )
}


def error_code(exc: CofferError) -> str:
    """The name under which ``exc`` travels over the agent channel."""
    for cls in type(exc).__mro__:
        if cls.__name__ in _BY_NAME:
            return cls.__name__
    return "EngineError"


def error_from_code(code: str, message: str) -> CofferError:
    """Rebuild an error sent by an agent; unknown codes become ``EngineError``."""
    return _BY_NAME.get(code, EngineError)(message)
