"""Server spans for the mock services, so that a trace shows BFF -> service as one tree.

Each service continues the caller's W3C `traceparent` with a SERVER span named after its
route (`GET /reviews/{id}`), under its own `service.name` (`product`, `reviews`,
`inventory`): one tracer provider per service, since the name belongs to the provider's
resource. Configuration is the standard one, read here because the mocks stand for
independent services that share no code with the BFF:

    OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT   where to send (OTLP/HTTP)
    OTEL_TRACES_EXPORTER=none, OTEL_SDK_DISABLED=true                  off
    OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*, OTEL_RESOURCE_ATTRIBUTES    read by the SDK

Nothing configured: no provider, no middleware, no cost. `/__*` admin calls are not traced.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .state import PLAN

__all__ = ["provider_from_env", "shutdown_providers", "tracing_middleware"]

_PROPAGATOR = TraceContextTextMapPropagator()


def _traces_endpoint(env: Mapping[str, str]) -> str | None:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return None
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not endpoint and env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"].strip().rstrip("/") + "/v1/traces"
    if not endpoint and exporter == "otlp":
        endpoint = "http://localhost:4318/v1/traces"
    return endpoint or None


def provider_from_env(
    service: str, environ: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """A provider exporting `service`'s spans over OTLP/HTTP, or None when not configured."""
    endpoint = _traces_endpoint(os.environ if environ is None else environ)
    if endpoint is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


async def shutdown_providers(providers: list[TracerProvider], timeout_s: float = 2.0) -> None:
    """Flush the last spans, waiting at most `timeout_s` (the collector may be down). The
    SDK's shutdown blocks, so it runs in a daemon thread that cannot hold up the exit."""
    if not providers:
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finished() -> None:
        if not done.done():
            done.set_result(None)

    def run() -> None:
        try:
            for provider in providers:
                provider.shutdown()
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is gone
                loop.call_soon_threadsafe(finished)

    threading.Thread(target=run, name="mock-otel-shutdown", daemon=True).start()
    await asyncio.wait({done}, timeout=timeout_s)


def tracing_middleware(tracer: trace.Tracer, route: str) -> Middleware:
    name = f"GET {route}"

    @web.middleware
    async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/__"):
            return await handler(request)
        span = tracer.start_span(
            name,
            context=_PROPAGATOR.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                "http.route": route,
                "url.path": request.path,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the caller hung up (its deadline passed)
            raise
        finally:
            plan = request.get(PLAN)
            if plan is not None and plan.fault:
                span.set_attribute("mock.fault", plan.fault)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            otel_context.detach(token)

    return traced
