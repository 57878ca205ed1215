"""The outermost middleware: the request's server span, trace context and metrics.

It wraps the edge middleware, so the span and `CURRENT` are in place while the edge writes
its access line (which then carries the trace id), and it sees the final status of every
answer, problem documents included. After the handler it reads the request's `CallContext`:
one duration per downstream call, and one `degraded` event and count per missing part.

Tracing off costs two clock reads, a context variable and the metric updates; no span.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bff.clients.call import CallContext
from bff.edge import forwarding
from bff.keys import CALL_CONTEXT, REQUEST_ID, TELEMETRY
from bff.observability import metrics
from bff.observability.tracing import CURRENT, RequestTrace

_PROPAGATOR = TraceContextTextMapPropagator()
# Anything else is "_OTHER": a client must not be able to mint label values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNMATCHED = "unmatched"


@web.middleware
async def telemetry_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else _UNMATCHED
    method = request.method if request.method in _METHODS else "_OTHER"
    tracer = request.app[TELEMETRY].tracer
    span: trace.Span | None = None
    otel_token = None
    # A client's `tracestate` travels downstream only within W3C limits (bff.edge.forwarding).
    traceparent = request.headers.get("traceparent")
    tracestate = forwarding.tracestate(request.headers.getall("tracestate", []))
    if tracer is None:
        ids = RequestTrace.passthrough(traceparent, tracestate)
    else:
        carrier = {} if traceparent is None else {"traceparent": traceparent}
        if tracestate is not None:
            carrier["tracestate"] = tracestate
        span = tracer.start_span(
            method if resource is None else f"{method} {route}",
            context=_PROPAGATOR.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": route,
                "url.path": request.path,
                "url.scheme": request.scheme,
            },
        )
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
        metrics.request_duration(route, method, str(status)).observe(time.perf_counter() - started)
        ctx = request.get(CALL_CONTEXT)
        if ctx is not None:
            _record_calls(ctx, span)
        if span is not None:
            _end_span(span, request, status)
        if otel_token is not None:
            otel_context.detach(otel_token)
        CURRENT.reset(token)


def _record_calls(ctx: CallContext, span: trace.Span | None) -> None:
    now = ctx.deadline.elapsed()
    for call in ctx.calls:
        outcome, duration = call.report(now)
        metrics.downstream_duration(call.service, outcome).observe(duration)
    for part, reason in ctx.degraded.items():
        metrics.degraded(part, reason).inc()
        if span is not None:
            span.add_event("degraded", {"bff.part": part, "bff.reason": reason})
    if span is not None and ctx.degraded:
        span.set_attribute("bff.degraded", [f"{p}:{r}" for p, r in ctx.degraded.items()])


def _end_span(span: trace.Span, request: web.Request, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        span.set_attribute("bff.request_id", request_id)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("error.type", str(status))
    span.end()
