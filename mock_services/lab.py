"""The fault lab: a page that turns every fault of the three mocks into a control.

`python -m mock_services` serves it on `--lab-port` (8089) next to the services, in the same
process, so it reaches their state directly: the page talks to its own origin only (no CORS
on the mocks, no proxy), through the operator routes of `mock_services.admin` mounted per
service:

    GET /                                  the page (mock_services/lab_static/: HTML, JS, CSS)
    GET /services                          [{"kind", "url"}] of the three services
    GET /presets                           the named presets (mock_services.presets)
    GET|PUT|DELETE /services/{kind}/__faults, GET|DELETE /services/{kind}/__stats, ...
                                           exactly what `{url}/__faults` etc. answer

The page is static: no build step, nothing from another origin (the machines it runs on are
offline), which its Content-Security-Policy also enforces.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from .admin import admin_routes, problem
from .handlers import json_response
from .presets import presets_json
from .state import SERVICE_KINDS, ServiceKind, ServiceState

__all__ = ["STATIC_DIR", "create_lab_app"]

STATIC_DIR = Path(__file__).with_name("lab_static")
# Only our own origin, for everything: a page that loads nothing from elsewhere works offline.
CSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"


class LabService:
    """One service as the lab sees it: its state and the URL it listens on."""

    __slots__ = ("state", "url")

    def __init__(self, state: ServiceState, url: str) -> None:
        self.state = state
        self.url = url


LAB_SERVICES = web.AppKey("lab_services", dict[ServiceKind, LabService])


def _state_of(request: web.Request) -> ServiceState:
    # The route only matches the three kinds, so the lookup cannot miss.
    kind: ServiceKind = request.match_info["kind"]  # type: ignore[assignment]
    return request.app[LAB_SERVICES][kind].state


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def _services(request: web.Request) -> web.Response:
    services = request.app[LAB_SERVICES]
    return json_response([{"kind": kind, "url": services[kind].url} for kind in services])


async def _presets(request: web.Request) -> web.Response:
    return json_response(presets_json())


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = problem(exc.status, exc.reason, f"{request.method} {request.path}")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    # The controls show what is in force now: never a copy from a browser's cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def create_lab_app(services: Mapping[ServiceKind, tuple[ServiceState, str]]) -> web.Application:
    """The lab for these services (state, base URL), in SERVICE_KINDS order. No I/O."""
    app = web.Application(middlewares=[_headers])
    known: dict[ServiceKind, LabService] = {
        kind: LabService(*services[kind]) for kind in SERVICE_KINDS if kind in services
    }
    app[LAB_SERVICES] = known
    kinds = "|".join(known)
    app.router.add_get("/", _index)
    app.router.add_get("/services", _services)
    app.router.add_get("/presets", _presets)
    app.router.add_routes(admin_routes(_state_of, prefix=f"/services/{{kind:{kinds}}}"))
    app.router.add_static("/static/", STATIC_DIR)
    return app
