"""What each downstream attempt leaves behind: a client span, attempt and retry counts.

`bff.clients.attempt.Call.attempt()` makes one `AttemptProbe` per attempt. `sending()` is
called once the request is about to go out (the breaker admitted it and an instance was
picked): it starts the client span (tracing on) and puts `traceparent`/`tracestate` in the
headers (always: the contract wants them on every call). `finish()` is called with whatever
the attempt raised. An attempt refused before any network call (deadline spent, breaker
open) has no span and is not counted: it shows as the part's outcome and the request's
`degraded` event instead.

A hedge (bff.clients.hedging) is a request of its own: its own span, with `bff.hedge` true,
and its own attempt count. The hedged request's span says what became of the hedge
(`bff.hedge.outcome`: won, lost, failed); when the hedge won, the hedged request counts as
cancelled.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from bff.errors import DownstreamError
from bff.observability import metrics
from bff.observability.logging import log
from bff.observability.tracing import RequestTrace, current_or_new

if TYPE_CHECKING:
    from bff.clients.transport import Endpoint
    from bff.context import PartCall
    from bff.resilience.pool import Instance


class AttemptProbe:
    __slots__ = (
        "_endpoint",
        "_hedge",
        "_sent",
        "_service",
        "_span",
        "_state",
        "_superseded",
        "_tracer",
        "status",
    )

    def __init__(
        self,
        tracer: trace.Tracer | None,
        service: str,
        endpoint: Endpoint,
        state: PartCall,
        *,
        hedge: bool = False,
    ) -> None:
        self._hedge = hedge  # this request is the hedge of another one
        self._superseded = False  # a hedge answered first: this request was cancelled
        self._tracer = tracer
        self._service = service
        self._endpoint = endpoint
        self._state = state
        self._sent = False
        self._span: trace.Span | None = None
        self.status: int | None = None

    def sending(
        self, instance: Instance, url_path: str, headers: dict[str, str], breaker: str
    ) -> None:
        self._sent = True
        request = current_or_new()
        # Tracing off, or this request not sampled (every standard sampler decides a trace's
        # child spans like its root: by the parent, or by the same trace id): no client span,
        # only the request's own context passed on. Creating and dropping three non-recording
        # spans per unsampled request was measurable at 10% sampling.
        if self._tracer is None or request.traceparent.endswith("-00"):
            _propagate(request, headers)
            return
        base = instance.base_url
        span = self._tracer.start_span(
            f"GET {self._endpoint.prefix}{{id}}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "url.full": f"{base}{url_path}",
                "server.address": base.host or "",
                "server.port": base.port or 0,
                "bff.service": self._service,
                "bff.instance": str(base),
                "bff.attempt": self._state.attempts,
                "bff.breaker.state": breaker,
                "bff.hedge": self._hedge,
            },
        )
        self._span = span
        _propagate(RequestTrace.of_span(span), headers)  # the attempt's span is the parent

    def hedged(self, outcome: str) -> None:
        """This request was hedged; `outcome`: won (the hedge's answer was used), lost, failed."""
        self._superseded = outcome == "won"
        if self._span is not None:
            self._span.set_attribute("bff.hedge.outcome", outcome)
            self._span.add_event("hedge_sent", {"bff.hedge.outcome": outcome})

    def finish(self, exc: BaseException | None, *, retry_delay: float | None = None) -> None:
        """`exc`: what the attempt raised (for a planned retry, the attempt's error, and the
        delay before the next attempt in `retry_delay`)."""
        if not self._sent:
            return
        if self._superseded:
            outcome = "cancelled"
        elif exc is None:
            outcome = "ok"
        elif isinstance(exc, DownstreamError):
            outcome = exc.reason
        elif isinstance(exc, asyncio.CancelledError):
            outcome = "cancelled"
        else:
            outcome = "error"
        metrics.attempts(self._service, outcome).inc()
        if retry_delay is not None:
            metrics.retries(self._service).inc()
        span = self._span
        if span is None:
            return
        span.set_attribute("bff.outcome", outcome)
        if self.status is not None:
            span.set_attribute("http.response.status_code", self.status)
        if outcome != "ok":
            span.set_attribute("error.type", outcome)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
        if retry_delay is not None:
            span.add_event(
                "retry_scheduled",
                {
                    "bff.retry.delay_ms": round(retry_delay * 1000, 3),
                    "bff.retry.next_attempt": self._state.attempts + 1,
                },
            )
        span.end()


def _propagate(context: RequestTrace, headers: dict[str, str]) -> None:
    headers["traceparent"] = context.traceparent
    if context.tracestate:
        headers["tracestate"] = context.tracestate


def on_breaker_transition(service: str, old: str, new: str) -> None:
    """Breaker hook: a log line, the gauge, and an event on the span of the request that
    caused it (the transition runs inline, in that request's context)."""
    log.warning("breaker_transition", service=service, old_state=old, new_state=new)
    metrics.set_breaker_state(service, new)
    trace.get_current_span().add_event(
        "breaker_state_change",
        {"bff.service": service, "bff.breaker.from": old, "bff.breaker.to": new},
    )
