"""The client span of a downstream attempt, and what a breaker transition leaves behind.

Only when tracing is on and the request is sampled: `bff.client` then starts one
`AttemptSpan` per request it sends (the first, a retry, or a hedge, which carries `bff.hedge`
true). The span becomes the parent in the `traceparent` that goes downstream. An attempt
refused before any network call (deadline spent, breaker open) has no span: it shows as the
part's outcome and the request's `degraded` event instead. The hedged request's span says
what became of the hedge (`bff.hedge.outcome`: won, lost, failed); when the hedge won, the
hedged request counts as cancelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from bff.observability import metrics
from bff.observability.logging import log

if TYPE_CHECKING:
    from bff.resilience.pool import Instance


class AttemptSpan:
    __slots__ = ("_span", "_superseded")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._superseded = False  # a hedge answered first: this request was cancelled

    @classmethod
    def start(
        cls,
        tracer: trace.Tracer,
        service: str,
        instance: Instance,
        path: str,
        headers: dict[str, str],
        attempt: int,
        breaker: str,
        *,
        hedge: bool,
    ) -> AttemptSpan:
        """The span, started, and its context put in `headers` (it is the parent of what
        the service does)."""
        base = instance.base_url
        prefix = path[: path.rfind("/") + 1]
        span = tracer.start_span(
            f"GET {prefix}{{id}}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "url.full": f"{base}{path}",
                "server.address": base.host or "",
                "server.port": base.port or 0,
                "bff.service": service,
                "bff.instance": str(base),
                "bff.attempt": attempt,
                "bff.breaker.state": breaker,
                "bff.hedge": hedge,
            },
        )
        sc = span.get_span_context()
        headers["traceparent"] = f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"
        if sc.trace_state:
            headers["tracestate"] = sc.trace_state.to_header()
        return cls(span)

    def hedged(self, outcome: str) -> None:
        """This request was hedged; `outcome`: won (the hedge's answer was used), lost, failed."""
        self._superseded = outcome == "won"
        self._span.set_attribute("bff.hedge.outcome", outcome)
        self._span.add_event("hedge_sent", {"bff.hedge.outcome": outcome})

    def finish(self, outcome: str, result: object) -> None:
        """`outcome`: "ok", a reason, "cancelled" or "error"; `result`: the reply (its status
        and error) or the exception."""
        span = self._span
        if self._superseded:
            outcome = "cancelled"
        span.set_attribute("bff.outcome", outcome)
        status = getattr(result, "status", 0)
        if status:
            span.set_attribute("http.response.status_code", status)
        if outcome != "ok":
            span.set_attribute("error.type", outcome)
            error = getattr(result, "error", result)
            span.set_status(Status(StatusCode.ERROR, str(error) if error is not None else ""))
        span.end()

    def retry_scheduled(self, delay_s: float, next_attempt: int) -> None:
        self._span.add_event(
            "retry_scheduled",
            {
                "bff.retry.delay_ms": round(delay_s * 1000, 3),
                "bff.retry.next_attempt": next_attempt,
            },
        )


def on_breaker_transition(service: str, old: str, new: str) -> None:
    """Breaker hook: a log line, the gauge, and an event on the span of the request that
    caused it (the transition runs inline, in that request's context)."""
    log.warning("breaker_transition", service=service, old_state=old, new_state=new)
    metrics.set_breaker_state(service, new)
    trace.get_current_span().add_event(
        "breaker_state_change",
        {"bff.service": service, "bff.breaker.from": old, "bff.breaker.to": new},
    )
