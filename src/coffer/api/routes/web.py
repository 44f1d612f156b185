"""The web dashboard (Coffer extension) and the one API route it needs besides Trove's.

- ``/dashboard/``: the single-page app's static files (``coffer/web/``), served with a
  strict Content-Security-Policy (scripts and styles from this origin only), so a value
  shown on a page can never run as code next to the token the page holds.
- ``/``: content negotiation. Trove's version document stays the answer for API clients
  (python-troveclient and keystoneauth send ``Accept: application/json``; curl sends
  ``*/*``; some send no ``Accept`` at all). Only a request that prefers ``text/html`` over
  JSON, as browsers' navigations do, is redirected (303) to ``/dashboard/``. Both answers
  carry ``Vary: Accept``.
- ``GET /v1.0/whoami``: the token's project id, name and admin flag. Trove has no route
  that tells a token holder its own project, and every Trove path needs it.

The dashboard reads all its data from the same REST API as every other client: nothing
here renders data server-side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coffer.api.deps import PrincipalDep, RuntimeDep
from coffer.api.openapi import replies
from coffer.contracts.api_v1_replies import WhoAmIReply
from coffer.services import projects

DASHBOARD_PATH = "/dashboard"

#: headers of every dashboard file: no inline or foreign code, no framing, no referrer
#: (URLs hold instance ids), and revalidation so an upgrade's files are picked up.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-cache",
}

router = APIRouter(tags=["auth"])


def static_dir() -> Path:
    """Where the dashboard's files are (package data of ``coffer``)."""
    return Path(__file__).resolve().parents[2] / "web"


@router.get("/v1.0/whoami", **replies(WhoAmIReply, 401))
def whoami(rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Coffer extension: who the ``X-Auth-Token`` belongs to, and the project's endpoint
    (what ``credentials.json`` calls ``endpoint``). 401 without a valid token."""
    return {
        "whoami": {
            "project_id": who.project_id,
            "project_name": who.project_name,
            "is_admin": who.is_admin,
            "endpoint": projects.endpoint_for(rt, who.project_id),
        }
    }


def _quality(ranges: list[tuple[str, float]], media_type: str) -> float:
    """The q of ``media_type`` under the most specific matching range (0 if none)."""
    main = media_type.split("/")[0]
    best: tuple[int, float] = (-1, 0.0)
    for rng, q in ranges:
        if rng == media_type:
            rank = 2
        elif rng == f"{main}/*":
            rank = 1
        elif rng == "*/*":
            rank = 0
        else:
            continue
        if rank > best[0]:
            best = (rank, q)
    return best[1]


def _parse_accept(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        if not fields[0]:
            continue
        q = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((fields[0].lower(), q))
    return ranges


def prefers_html(accept: str | None) -> bool:
    """True when an ``Accept`` header ranks ``text/html`` strictly above
    ``application/json``. Pure; a missing, empty or malformed header is False (JSON), so
    API clients keep Trove's version document."""
    if not accept:
        return False
    ranges = _parse_accept(accept)
    return _quality(ranges, "text/html") > _quality(ranges, "application/json")


class DashboardMiddleware:
    """Sends browsers from ``/`` to the dashboard and adds the dashboard's headers.

    Touches only ``/`` and ``/dashboard/...``; every other request passes unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/":
            if scope["method"] in ("GET", "HEAD") and prefers_html(
                Headers(scope=scope).get("accept")
            ):
                target = scope.get("root_path", "") + DASHBOARD_PATH + "/"
                redirect = RedirectResponse(target, status_code=303, headers={"Vary": "Accept"})
                await redirect(scope, receive, send)
                return
            await self.app(scope, receive, _adding(send, {"vary": "Accept"}))
        elif path.startswith(DASHBOARD_PATH + "/"):
            await self.app(scope, receive, _adding(send, SECURITY_HEADERS))
        else:
            await self.app(scope, receive, send)


def _adding(send: Send, headers: dict[str, str]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            out = MutableHeaders(scope=message)
            for key, value in headers.items():
                out[key] = value
        await send(message)

    return wrapped


def install(app: FastAPI) -> None:
    """Register the dashboard on ``app``: ``/v1.0/whoami``, the static files under
    ``/dashboard/`` and the middleware for ``/``. Call once, after the API routes."""
    app.include_router(router)
    app.mount(DASHBOARD_PATH, StaticFiles(directory=static_dir(), html=True), name="dashboard")
    app.add_middleware(DashboardMiddleware)
