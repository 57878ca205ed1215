"""The one middleware of the public port: everything a request goes through besides its
handler, in this order.

    context       its id (a valid X-Request-ID, or a new one), its clock (from when its bytes
                  arrived, bff.edge.protocol), its trace ids: the server span's when tracing
                  is on, else the caller's `traceparent` passed through (or fresh ids)
    admission     how long it waited before this point: a sample for bff.edge.admission
    edge guard    CORS, route and body checks, auth, rate limit (bff.edge.guard), then the
                  handler
    problems      every exception becomes its problem+json (`problems.from_exception`: a
                  `BffError` gets its contract status, aiohttp's own HTTP errors become
                  problems too, anything else is logged with its traceback and answered 500
                  with nothing internal)
    answer        caching headers, ETag and 304, content coding (bff.answer)
    report        the request's one `Report`: Server-Timing, the access line, the metrics and
                  the span all read it

A streamed answer (the handler prepared it itself, with `finish_stream`) is only reported.
Tracing off costs a context variable and no span.
"""

from __future__ import annotations

import asyncio
import os
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bff import answer, problems, validation
from bff.context import CONTEXT, CURRENT, Report, RequestContext, RequestTrace
from bff.edge.admission import Admission
from bff.edge.guard import EdgeGuard
from bff.edge.protocol import take_received_at
from bff.keys import EDGE
from bff.observability import metrics
from bff.observability.logging import access_log
from bff.observability.tracing import Telemetry

__all__ = ["finish_stream", "request_middleware"]

_PROPAGATOR = TraceContextTextMapPropagator()
# Anything else is "_OTHER": a client must not be able to mint label values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNMATCHED = "unmatched"


def request_middleware(
    guard: EdgeGuard, admission: Admission, telemetry: Telemetry, min_bytes: int
) -> Middleware:
    """The middleware, bound to the app's guard, admission, tracer and compression floor."""
    requests = metrics.REQUESTS
    request_id_pattern = validation.REQUEST_ID

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = take_received_at(request)
        headers = request.headers
        request_id = headers.get("X-Request-ID")
        if request_id is None or request_id_pattern.fullmatch(request_id) is None:
            request_id = os.urandom(16).hex()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else _UNMATCHED
        method = request.method if request.method in _METHODS else "_OTHER"
        tracer = telemetry.tracer
        span = None
        otel_token = None
        if tracer is None:
            trace_ids = RequestTrace.passthrough(
                headers.get("traceparent"),
                validation.tracestate(headers.getall("tracestate"))
                if "tracestate" in headers
                else None,
            )
        else:
            span = _server_span(tracer, request, method, route if resource is not None else None)
            otel_token = otel_context.attach(trace.set_span_in_context(span))
            trace_ids = _ids_of(span)
        ctx = request[CONTEXT] = RequestContext(request_id, started, trace_ids)
        token = CURRENT.set(trace_ids)
        ctx.waited = waited = time.perf_counter() - started
        # Its delay: the wait measured since the loop read its bytes, plus how late the loop
        # runs (what it waited before that, unseen; bff.edge.admission).
        lag = admission.loop_lag
        admission.observe(waited if lag is None else waited + lag.lag)
        requests.in_flight += 1
        status = 500
        try:
            try:
                response = await guard(request, handler)
            except Exception as exc:  # a cancellation (BaseException) goes on up
                response = problems.from_exception(
                    exc, instance=request.path, request_id=request_id
                )
            if not response.prepared:
                response = answer.finish(request, response, min_bytes, ctx.freshness)
                response.headers["X-Request-ID"] = request_id
                response.headers["Server-Timing"] = ctx.report().server_timing()
                guard.decorate(request, response)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            requests.in_flight -= 1
            report = ctx.report()
            access_log(
                request_id, request.method, route if resource is not None else None, status, report
            )
            metrics.record_request(route, method, status, report, waited)
            if span is not None:
                _end_span(span, report, request_id, status)
            if otel_token is not None:
                otel_context.detach(otel_token)
            CURRENT.reset(token)

    return middleware


def finish_stream(request: web.Request, response: web.StreamResponse) -> None:
    """What a streamed answer carries, set by its handler before the first byte goes out:
    the edge's headers, the request id, and Server-Timing as far as it is known then."""
    ctx = request[CONTEXT]
    answer.finish_stream_headers(request, response)
    response.headers["X-Request-ID"] = ctx.id
    response.headers["Server-Timing"] = ctx.server_timing_now()
    request.app[EDGE].decorate(request, response)


def _server_span(
    tracer: trace.Tracer, request: web.Request, method: str, route: str | None
) -> trace.Span:
    """The request's server span, child of the client's trace context."""
    carrier = {}
    traceparent = request.headers.get("traceparent")
    if traceparent is not None:
        carrier["traceparent"] = traceparent
    # A client's `tracestate` travels downstream only within W3C limits.
    tracestate = validation.tracestate(request.headers.getall("tracestate", []))
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


def _ids_of(span: trace.Span) -> RequestTrace:
    sc = span.get_span_context()
    state = sc.trace_state.to_header() if sc.trace_state else None
    return RequestTrace(f"{sc.trace_id:032x}", f"{sc.span_id:016x}", f"{sc.trace_flags:02x}", state)


def _end_span(span: trace.Span, report: Report, request_id: str, status: int) -> None:
    """One event per part served by the cache, one per degraded part, then the status."""
    for part in report.parts:
        if part.source:
            attributes: dict[str, str | int] = {"bff.part": part.service, "bff.source": part.source}
            if part.service in report.stale:
                attributes["bff.age_s"] = report.stale[part.service]
            span.add_event("cache", attributes)
    for name, reason in report.degraded.items():
        span.add_event("degraded", {"bff.part": name, "bff.reason": reason})
    if report.degraded:
        span.set_attribute("bff.degraded", [f"{p}:{r}" for p, r in report.degraded.items()])
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("bff.request_id", request_id)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("error.type", str(status))
    span.end()
