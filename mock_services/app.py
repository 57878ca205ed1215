"""The application factory of the mock services: `create_service_app(kind, ...)`.

One factory for the three services; it does no I/O. Each app owns its `ServiceState`
(faults, RNG, stats), so apps never share anything. A middleware counts every request
outside `/__*`, records its arrival for `GET /__stats`, and logs one line when it is done:

    product GET /products/P001 200 50.3ms fault=-
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry.trace import TracerProvider

from .admin import setup_admin_routes
from .faults import FaultSettings, Outcome
from .handlers import handler_for
from .state import DEFAULT_LATENCY_MS, PLAN, SERVICE_KINDS, SERVICE_STATE, ServiceKind, ServiceState
from .tracing import tracing_middleware

__all__ = ["ROUTES", "create_service_app"]

logger = logging.getLogger("mock_services")

ROUTES: dict[ServiceKind, str] = {
    "product": "/products/{id}",
    "reviews": "/reviews/{id}",
    "inventory": "/inventory/{id}",
}


def create_service_app(
    kind: ServiceKind,
    *,
    latency_scale: float = 1.0,
    seed_faults: FaultSettings | None = None,
    tracer_provider: TracerProvider | None = None,
) -> web.Application:
    """A mock `kind` service. Its default latency (docs/contract.md §1) is multiplied by
    `latency_scale` (0: none); `seed_faults` are the faults in force at start
    (`DELETE /__faults` goes back to the defaults, not to these). With a `tracer_provider`,
    each request gets a server span continuing the caller's `traceparent`."""
    if kind not in SERVICE_KINDS:
        raise ValueError(f"unknown service kind: {kind!r}")
    if not latency_scale >= 0:
        raise ValueError(f"latency_scale must be >= 0, got {latency_scale!r}")
    state = ServiceState(kind, DEFAULT_LATENCY_MS[kind] * latency_scale)
    if seed_faults is not None:
        state.install(seed_faults)

    middlewares: list[Middleware] = [_track]
    if tracer_provider is not None:
        tracer = tracer_provider.get_tracer("mock_services")
        middlewares.insert(0, tracing_middleware(tracer, ROUTES[kind]))
    app = web.Application(middlewares=middlewares)
    app[SERVICE_STATE] = state
    app.router.add_get(ROUTES[kind], handler_for(kind))
    setup_admin_routes(app)
    return app


@web.middleware
async def _track(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/__"):
        return await handler(request)
    state = request.app[SERVICE_STATE]
    entry = state.stats.record_arrival(request)
    started = time.perf_counter()
    status: int | str = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = "cancelled"
        raise
    finally:
        plan = request.get(PLAN)
        if plan is not None and plan.outcome is Outcome.RESET:
            status = "reset"
        entry.status = status
        entry.fault = plan.fault if plan is not None else None
        entry.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        logger.info(
            "%s %s %s %s %.1fms fault=%s",
            state.kind,
            request.method,
            request.path_qs,
            status,
            entry.duration_ms,
            entry.fault or "-",
        )
