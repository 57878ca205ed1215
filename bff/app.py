"""`create_app(settings)`: the application factory. No I/O here; clients and the tracer
provider (with its export thread) open at start-up, and close in the reverse order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver
from opentelemetry import trace

from bff._compat import disable_silent_resend
from bff.cache import open_part_cache
from bff.clients.base import DownstreamClient
from bff.edge.guard import EdgeGuard
from bff.keys import CLIENTS, EDGE, LIFECYCLE, PART_CACHE, PARTS, RESOLVER, SETTINGS, TELEMETRY
from bff.lifecycle import Lifecycle
from bff.middlewares import edge_middleware
from bff.observability import metrics, tracing
from bff.observability.downstream import on_breaker_transition
from bff.observability.middleware import telemetry_middleware
from bff.observability.sampler import sampling
from bff.parts import PARTS as DECLARED_PARTS
from bff.parts import Part
from bff.resilience.discovery import discovering
from bff.resilience.loop_lag import LoopLag
from bff.routes import setup_routes
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
    # GET requests carry no body; the edge guard refuses one past this cap with 413.
    app = web.Application(
        middlewares=[telemetry_middleware, edge_middleware],
        client_max_size=settings.edge.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[PARTS] = parts
    if resolver is not None:
        app[RESOLVER] = resolver
    app[LIFECYCLE] = Lifecycle()
    app[EDGE] = EdgeGuard(settings.edge, app[LIFECYCLE], deadline_s=settings.deadline_s)
    tracer = (
        None if tracer_provider is None else tracer_provider.get_tracer(tracing.INSTRUMENTATION)
    )
    app[TELEMETRY] = tracing.Telemetry(tracer)
    setup_routes(app)
    app.cleanup_ctx.append(app[EDGE].resources)
    if tracer_provider is None and settings.tracing.enabled:
        app.cleanup_ctx.append(_tracer_provider)
    app.cleanup_ctx.append(_part_cache)
    app.cleanup_ctx.append(_downstream_clients)
    return app


async def _part_cache(app: web.Application) -> AsyncIterator[None]:
    """The worker's part cache; Redis (when configured) connects on the first lookup."""
    settings = app[SETTINGS]
    app[PART_CACHE] = cache = open_part_cache(settings.cache, settings.redis_url)
    try:
        yield
    finally:
        if cache is not None:
            await cache.close()


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


async def _downstream_clients(app: web.Application) -> AsyncIterator[None]:
    """One client per part, on one ClientSession per app."""
    settings = app[SETTINGS]
    session = _session(settings, app.get(RESOLVER))

    loop_lag = LoopLag()
    loop_lag.start()

    def client(ds: DownstreamSettings) -> DownstreamClient:
        return DownstreamClient(
            ds,
            session,
            propagation_margin_s=settings.propagation_margin_s,
            on_breaker_transition=on_breaker_transition,
            tracer=app[TELEMETRY].tracer,
            loop_lag=loop_lag,
            lag_neutral_s=settings.loop_lag_neutral_s,
        )

    services = [settings.downstream(part.name) for part in app[PARTS]]
    for ds in services:
        metrics.set_breaker_state(ds.name, "closed")
    clients = app[CLIENTS] = {ds.name: client(ds) for ds in services}
    try:
        downstream = tuple(clients.values())
        # URLs given by name: resolved once before the first request, then kept fresh.
        names = [(c.name, c.settings.urls, c.pool) for c in downstream]
        async with (
            discovering(names, settings.dns_refresh_s, app.get(RESOLVER)),
            sampling(downstream),
        ):
            app[LIFECYCLE].started = True
            yield
    finally:
        app[LIFECYCLE].draining = True
        await loop_lag.stop()
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
