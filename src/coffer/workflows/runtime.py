"""The runtime the workflow steps use, installed once at server start-up.

DBOS workflows are module-level functions registered at import, so they reach their
collaborators through this holder rather than through arguments (which DBOS persists).
"""

from __future__ import annotations

from coffer.services.runtime import Runtime

_runtime: Runtime | None = None


def install(rt: Runtime) -> None:
    global _runtime
    _runtime = rt


def current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("workflow runtime not installed; the server must call install()")
    return _runtime
