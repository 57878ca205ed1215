"""The admin listener: `/healthz`, `/readyz`, `/metrics` and the live status page (`/status`,
`/status.json`: bff.admin.status), on BFF_ADMIN_PORT only.

Operators' endpoints live apart from the API so that the public port never tells an
attacker a breaker's state nor lets anyone make a worker render 13-60 KB of metrics, and so
that nothing the edge does to clients (CORS, rate limits, JWT, load shedding) can ever stop
a probe. Each worker serves this app on its own runner next to the public one, sharing the
worker's `Lifecycle`, so `/readyz` says 503 as soon as that worker drains. With several
workers the admin port is a second SO_REUSEPORT group reserved by the supervisor, exactly
like the public port (see bff.server): whichever worker a probe lands on answers for itself,
and `/metrics` from any of them adds up all of them (prometheus multiprocess mode).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from bff import problems, validation
from bff.admin.health import healthz, readyz
from bff.admin.metrics import get_metrics
from bff.admin.status import setup_status_routes
from bff.answer import stamp
from bff.keys import LIFECYCLE, REQUEST_ID, SETTINGS
from bff.lifecycle import Lifecycle
from bff.settings import Settings

__all__ = ["create_admin_app"]


def create_admin_app(
    settings: Settings, lifecycle: Lifecycle, *, public: web.Application | None = None
) -> web.Application:
    """No I/O: the worker runs it next to the public app, on the admin port. `public`: that
    app, whose clients and edge the status page shows (without it, no status page)."""
    app = web.Application(middlewares=[_admin_middleware], client_max_size=0)
    app[SETTINGS] = settings
    app[LIFECYCLE] = lifecycle
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", get_metrics, name="metrics")
    if public is not None:
        setup_status_routes(app, public)
    return app


@web.middleware
async def _admin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id and problems as on the public port; nothing else (no CORS, no limits)."""
    request_id = validation.request_id(request.headers.get("X-Request-ID"))
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except Exception as exc:  # a cancellation (BaseException) goes on up
        response = problems.from_exception(exc, instance=request.path, request_id=request_id)
    response.headers["X-Request-ID"] = request_id
    stamp(response.headers)
    return response
