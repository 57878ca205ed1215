"""`create_app(settings)`: the application factory, and its routes. No I/O here: the clients,
the part cache and the tracer provider (with its export thread) open at start-up, and close
in the reverse order.

The id segment of the route matches anything (even `/` and CR/LF) on purpose: a bad id gets
a 400 from validation, not a 404 from the router. Operators' paths (/healthz, /readyz,
/metrics, /status) are not here: they are on the admin listener (bff.admin), and here a 404
problem like any unknown path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cache
from importlib.resources import files
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver
from opentelemetry import trace

from bff._compat import disable_silent_resend
from bff.admin.status import publishing
from bff.cache.fetcher import CachedFetcher
from bff.cache.store import open_part_cache
from bff.client import DownstreamClient
from bff.edge.admission import Admission
from bff.edge.guard import EdgeGuard
from bff.keys import (
    ADMISSION,
    CLIENTS,
    EDGE,
    FETCHER,
    LIFECYCLE,
    LOOP_LAG,
    PART_CACHE,
    PARTS,
    RESOLVER,
    SETTINGS,
    TELEMETRY,
)
from bff.lifecycle import Lifecycle
from bff.middleware import request_middleware
from bff.observability import metrics, tracing
from bff.observability.sampler import sampling
from bff.observability.spans import on_breaker_transition
from bff.parts import PARTS as DECLARED_PARTS
from bff.parts import Part
from bff.product_details import ProductDetails
from bff.resilience.discovery import discovering
from bff.resilience.loop_lag import LoopLag
from bff.settings import DownstreamSettings, Settings


def create_app(
    settings: Settings,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    resolver: AbstractResolver | None = None,
    parts: tuple[Part[Any], ...] = DECLARED_PARTS,
) -> web.Application:
    """`tracer_provider`: trace with this one (tests) instead of what `settings.tracing` says.
    `resolver`: answers for the downstream names (tests), instead of the system's resolver.
    `parts`: what the answer is made of (each needs `settings.downstream(part.name)`)."""
    lifecycle = Lifecycle()
    deadline_s = settings.deadline_s
    guard = EdgeGuard(settings.edge, lifecycle, deadline_s=deadline_s)
    admission = Admission(
        deadline_s=deadline_s,
        max_in_flight=settings.edge.max_in_flight,
        enabled=settings.edge.adaptive_concurrency,
    )
    tracer = (
        None if tracer_provider is None else tracer_provider.get_tracer(tracing.INSTRUMENTATION)
    )
    telemetry = tracing.Telemetry(tracer)
    middleware = request_middleware(guard, admission, telemetry, settings.cache.compress_min_bytes)
    # GET requests carry no body; the edge guard refuses one with 413.
    app = web.Application(middlewares=[middleware], client_max_size=settings.edge.max_body_bytes)
    app[SETTINGS] = settings
    app[PARTS] = parts
    if resolver is not None:
        app[RESOLVER] = resolver
    app[LIFECYCLE] = lifecycle
    app[EDGE] = guard
    app[ADMISSION] = admission
    app[TELEMETRY] = telemetry
    app[FETCHER] = CachedFetcher({}, None, refresh_budget_s=deadline_s)
    details = ProductDetails(parts, app[FETCHER], admission, deadline_s=deadline_s)
    app.router.add_get(r"/product-details/{id:[\s\S]*}", details.get, name="product-details")
    app.router.add_get("/openapi.json", openapi, name="openapi")
    app.cleanup_ctx.append(guard.resources)
    if tracer_provider is None and settings.tracing.enabled:
        app.cleanup_ctx.append(_tracer_provider)
    app.cleanup_ctx.append(_downstream)
    return app


@cache
def _openapi_document() -> bytes:
    return files("bff").joinpath("openapi.json").read_bytes()


async def openapi(request: web.Request) -> web.Response:
    """The API description, a file kept in the repo (bff/openapi.json): the source of truth
    that tests check the running app against and fuzz it from (schemathesis)."""
    return web.Response(body=_openapi_document(), content_type="application/json")


async def _tracer_provider(app: web.Application) -> AsyncIterator[None]:
    """This worker's own provider: export threads do not survive a fork, and the global
    provider can be set only once per process."""
    settings = app[SETTINGS].tracing
    provider = tracing.build_tracer_provider()
    app[TELEMETRY].tracer = provider.get_tracer(tracing.INSTRUMENTATION)
    try:
        yield
    finally:
        await tracing.shutdown_provider(provider, settings.flush_timeout_s)


async def _downstream(app: web.Application) -> AsyncIterator[None]:
    """The part cache and one client per part on one ClientSession; what keeps them fresh
    (discovery, the loop-lag probe, the metrics' sampler and flush) while the app runs."""
    settings = app[SETTINGS]
    admission = app[ADMISSION]
    session = _session(settings, app.get(RESOLVER))
    loop_lag = app[LOOP_LAG] = admission.loop_lag = LoopLag(on_tick=admission.observe)
    loop_lag.start()
    tracer = app[TELEMETRY].tracer

    def client(ds: DownstreamSettings) -> DownstreamClient:
        return DownstreamClient(
            ds,
            session,
            propagation_margin_s=settings.propagation_margin_s,
            on_breaker_transition=on_breaker_transition,
            tracer=tracer,
            loop_lag=loop_lag,
            lag_neutral_s=settings.loop_lag_neutral_s,
        )

    services = [settings.downstream(part.name) for part in app[PARTS]]
    for ds in services:
        metrics.set_breaker_state(ds.name, "closed")
    clients = app[CLIENTS] = {ds.name: client(ds) for ds in services}
    part_cache = app[PART_CACHE] = open_part_cache(settings.cache, settings.redis_url)
    fetcher = app[FETCHER]
    fetcher.bind(clients, part_cache)
    watched = [metrics.watch(c) for c in clients.values()]
    watched.append(metrics.watch(admission))
    if part_cache is not None:
        watched.append(metrics.watch(part_cache))
    try:
        downstream = tuple(clients.values())
        # URLs given by name: resolved once before the first request, then kept fresh.
        names = [(c.name, c.settings.urls, c.pool) for c in downstream]
        async with (
            discovering(names, settings.dns_refresh_s, app.get(RESOLVER)),
            sampling(downstream),
            metrics.flushing(),
            publishing(app, settings.metrics_dir),
        ):
            app[LIFECYCLE].started = True
            yield
    finally:
        app[LIFECYCLE].draining = True
        for forget in watched:
            forget()
        await loop_lag.stop()
        if part_cache is not None:
            await part_cache.close()
        await session.close()


def _session(settings: Settings, resolver: AbstractResolver | None) -> aiohttp.ClientSession:
    """Sized for high concurrency; `resolver`: the tests' own, or None for the system's."""
    connector = aiohttp.TCPConnector(
        # aiohttp's default of 100 connections in all queues calls past the deadline under
        # load; bulkheads (max_in_flight per service) are the real cap.
        limit=settings.max_connections,
        limit_per_host=0,
        ttl_dns_cache=60,
        keepalive_timeout=30,
        resolver=resolver,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        # Timeouts come from the deadline and the per-attempt policy, not from aiohttp.
        timeout=aiohttp.ClientTimeout(total=None),
        # One session calls for every user: a cookie a service set for one call would go out
        # on everybody's next call. None is kept, none sent (and no jar lookup per call).
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
        trust_env=False,
    )
    # No hidden second retry layer under our budgeted one (bff._compat says why).
    disable_silent_resend(session)
    return session
