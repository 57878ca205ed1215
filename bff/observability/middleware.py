"""The outermost middleware: the request's context, server span, trace context and metrics.

It makes the request's `RequestContext` (its id, from a valid `X-Request-ID` or new, and the
clock that times it), and wraps the edge middleware, so the span and `CURRENT` are in place
while the edge writes its access line (which then carries the trace id), and it sees the
final status of every answer, problem documents included. After the handler it reads the
context's one `Report`: one duration per part, one `degraded` event and count per missing
part, and one span event per part served by the cache.

Tracing off costs two clock reads, a context variable and the metric updates; no span.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bff import validation
from bff.context import Report, RequestContext
from bff.edge import forwarding
from bff.edge.arrival import take_received_at
from bff.keys import CONTEXT, TELEMETRY
from bff.observability import metrics
from bff.observability.tracing import CURRENT, RequestTrace

_PROPAGATOR = TraceContextTextMapPropagator()
# Anything else is "_OTHER": a client must not be able to mint label values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNMATCHED = "unmatched"


@web.middleware
async def telemetry_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # From when the request's bytes arrived: time queued in this worker counts, in
    # Server-Timing and in the deadline.
    started = take_received_at(request)
    ctx = RequestContext(validation.request_id(request.headers.get("X-Request-ID")), started)
    request[CONTEXT] = ctx
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else _UNMATCHED
    method = request.method if request.method in _METHODS else "_OTHER"
    span = _server_span(request, method, route if resource is not None else None)
    otel_token = None
    if span is None:
        # A client's `tracestate` travels downstream only within W3C limits.
        tracestate = forwarding.tracestate(request.headers.getall("tracestate", []))
        ids = RequestTrace.passthrough(request.headers.get("traceparent"), tracestate)
    else:
        otel_token = otel_context.attach(trace.set_span_in_context(span))
        ids = RequestTrace.of_span(span)
    token = CURRENT.set(ids)
    metrics.IN_FLIGHT.inc()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # the edge answers these; kept for safety
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away
        raise
    finally:
        metrics.IN_FLIGHT.dec()
        report = ctx.report()  # already built by the edge, unless the handler never returned
        metrics.request_duration(route, method, str(status)).observe(report.total_s)
        _record_parts(report, span)
        if span is not None:
            _end_span(span, ctx.id, status)
        if otel_token is not None:
            otel_context.detach(otel_token)
        CURRENT.reset(token)


def _server_span(request: web.Request, method: str, route: str | None) -> trace.Span | None:
    """The request's server span, child of the client's trace context; None: tracing off."""
    tracer = request.app[TELEMETRY].tracer
    if tracer is None:
        return None
    carrier = {}
    traceparent = request.headers.get("traceparent")
    if traceparent is not None:
        carrier["traceparent"] = traceparent
    # A client's `tracestate` travels downstream only within W3C limits (bff.edge.forwarding).
    tracestate = forwarding.tracestate(request.headers.getall("tracestate", []))
    if tracestate is not None:
        carrier["tracestate"] = tracestate
    return tracer.start_span(
        method if route is None else f"{method} {route}",
        context=_PROPAGATOR.extract(carrier),
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": method,
            "http.route": route or _UNMATCHED,
            "url.path": request.path,
            "url.scheme": request.scheme,
        },
    )


def _record_parts(report: Report, span: trace.Span | None) -> None:
    for part in report.parts:
        metrics.downstream_duration(part.service, part.outcome).observe(part.duration_s)
        if span is not None and part.source:
            attributes: dict[str, str | int] = {"bff.part": part.service, "bff.source": part.source}
            if part.service in report.stale:
                attributes["bff.age_s"] = report.stale[part.service]
            span.add_event("cache", attributes)
    for name, reason in report.degraded.items():
        metrics.degraded(name, reason).inc()
        if span is not None:
            span.add_event("degraded", {"bff.part": name, "bff.reason": reason})
    if span is not None and report.degraded:
        span.set_attribute("bff.degraded", [f"{p}:{r}" for p, r in report.degraded.items()])


def _end_span(span: trace.Span, request_id: str, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("bff.request_id", request_id)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("error.type", str(status))
    span.end()
