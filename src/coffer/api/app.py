"""The FastAPI application factory. All state comes in through ``Runtime``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request

from coffer import __version__
from coffer.api import audit, errors, keystone_views, openapi
from coffer.api.deps import PrincipalDep, refuse_nul
from coffer.api.http_metrics import RequestMetrics
from coffer.api.openapi import replies
from coffer.api.routes import (
    admin_ops,
    agent,
    backups,
    catalog,
    clusters,
    configurations,
    events,
    instance_metrics,
    instances,
    keystone,
    logs,
    metrics,
    mgmt,
    mgmt_users,
    web,
)
from coffer.contracts.api_v1_replies import Health, VersionList, VersionReply
from coffer.services.runtime import Runtime

_UPDATED = "2012-08-01T00:00:00Z"


def _version_doc(base: str) -> dict[str, Any]:
    return {
        "id": "v1.0",
        "status": "CURRENT",
        "updated": _UPDATED,
        "links": [{"rel": "self", "href": f"{base}/v1.0/"}],
    }


def _root_replies() -> dict[str, Any]:
    """``/``: the version document, or a redirect for browsers (``routes.web``)."""
    out = replies(VersionList)
    out["responses"][303] = {
        "description": "A browser (Accept prefers text/html) is sent to /dashboard/",
        "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
    }
    return out


def create_app(
    rt: Runtime,
    *,
    on_startup: Callable[[], None] | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        rt.wakeup.bind(asyncio.get_running_loop())
        if on_startup:
            on_startup()
        try:
            yield
        finally:
            if on_shutdown:
                on_shutdown()

    app = FastAPI(
        title="Coffer", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.runtime = rt
    errors.install(app)
    audit.install(app)
    app.add_middleware(RequestMetrics, metrics=rt.metrics)

    @app.get("/", tags=["versions"], **_root_replies())
    def versions(request: Request) -> dict[str, Any]:
        base = rt.settings.public_url or str(request.base_url).rstrip("/")
        return {"versions": [_version_doc(base), keystone_views.version(base)]}

    @app.get("/v1.0/", tags=["versions"], **replies(VersionReply, 401))
    @app.get("/v1.0", tags=["versions"], include_in_schema=False)
    def version(request: Request, who: PrincipalDep) -> dict[str, Any]:
        base = rt.settings.public_url or str(request.base_url).rstrip("/")
        return {"version": _version_doc(base)}

    @app.get("/healthz", tags=["versions"], **replies(Health))
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    public = [Depends(refuse_nul)]
    for module in (
        catalog,
        configurations,
        instances,
        clusters,
        backups,
        admin_ops,
        logs,
        events,
        instance_metrics,
        mgmt,
        mgmt_users,
        keystone,
    ):
        app.include_router(module.router, dependencies=public)
    app.include_router(agent.router)
    app.include_router(metrics.router)
    web.install(app)
    openapi.install(app)
    return app
