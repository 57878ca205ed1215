"""The request context, its trace ids, its deadline, its part calls and its one report.

The middleware makes one `RequestContext` per request: its id, the clock that times it
(from when its bytes arrived, bff.edge.protocol) and its W3C trace ids. The handler starts its
deadline (`start`); every part records itself in one `PartCall`, written by whoever does the
work (the cache, the client). Once the answer is decided, `report()` reads every part under
one `now` and keeps the result: Server-Timing, the access line, the metrics and the span all
read that one `Report`, so they can never disagree.

`CURRENT` holds the trace ids of the request being served (the server span's, or the
pass-through ones when tracing is off); log lines and downstream calls read it.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bff.answer import AnswerFreshness
    from bff.errors import DownstreamError
    from bff.resilience.pool import Instance

__all__ = [
    "CONTEXT",
    "CURRENT",
    "SUBJECT",
    "PartCall",
    "PartReport",
    "Report",
    "RequestContext",
    "RequestTrace",
]

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class RequestTrace:
    """The trace ids of one request, and the `traceparent`/`tracestate` sent downstream."""

    __slots__ = ("sampled", "span_id", "trace_id", "traceparent", "tracestate")

    def __init__(self, trace_id: str, span_id: str, flags: str, tracestate: str | None) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.traceparent = f"00-{trace_id}-{span_id}-{flags}"
        self.tracestate = tracestate
        # The flags' lowest bit (W3C): other bits ("random", level 2) say nothing of it.
        self.sampled = int(flags, 16) & 1 == 1

    @classmethod
    def passthrough(cls, traceparent: str | None, tracestate: str | None) -> RequestTrace:
        """Tracing off: continue the caller's context unchanged, or start an unsampled one."""
        if traceparent is not None:
            m = _TRACEPARENT.fullmatch(traceparent.strip())
            if m is not None and m[1] != "ff" and m[2] != _ZERO_TRACE and m[3] != _ZERO_SPAN:
                return cls(m[2], m[3], m[4], tracestate)
        return cls(f"{random.getrandbits(128):032x}", f"{random.getrandbits(64):016x}", "00", None)


CURRENT: ContextVar[RequestTrace | None] = ContextVar("bff_request_trace", default=None)


class PartCall:
    """One part of one request: what Server-Timing, the log and the metrics read of it."""

    __slots__ = (
        "attempts",
        "duration",
        "error",
        "fresh_for",
        "hedge",
        "last_instance",
        "outcome",
        "service",
        "shareable",
        "source",
        "started",
    )

    def __init__(self, service: str, started: float) -> None:
        self.service = service
        self.started = started  # seconds since the request arrived
        self.duration: float | None = None
        self.attempts = 0  # requests sent for this part by its own live call
        self.last_instance: Instance | None = None
        self.error: DownstreamError | None = None  # the last failed attempt's error
        # "ok", a contract reason ("timeout", "circuit_open", ...) or "cancelled".
        self.outcome = "pending"
        # Where the value came from when not from a live call of its own: "cache", "stale",
        # "coalesced", "revalidated" (a 304 to our If-None-Match: a live call, a stored body).
        self.source = ""
        # What the cache said of the value: whole seconds it stays fresh, and whether it was
        # stored for everyone (our answer's Cache-Control follows the least of its parts).
        self.fresh_for = 0
        self.shareable = False
        # What became of this call's hedge, if one was sent: "won", "lost" or "failed".
        self.hedge: str | None = None


@dataclass(frozen=True, slots=True)
class PartReport:
    service: str
    outcome: str  # "ok", a reason, or "cancelled" for a call the answer did not wait for
    duration_s: float
    attempts: int
    source: str  # "", "cache", "stale", "coalesced", "revalidated"
    hedge: str | None  # None, or what became of the call's hedge: "won", "lost", "failed"

    @property
    def desc(self) -> str:
        """Server-Timing's desc: the failure reason first, else where the value came from."""
        return self.outcome if self.outcome != "ok" else self.source


@dataclass(frozen=True, slots=True)
class Report:
    """The request as every observer reports it, read once under one `now`."""

    total_s: float
    parts: tuple[PartReport, ...]
    degraded: dict[str, str]  # part -> reason, as in the answer
    stale: dict[str, int]  # part -> age in whole seconds, as in the answer

    def server_timing(self) -> str:
        entries = []
        for part in self.parts:
            desc = part.outcome if part.outcome != "ok" else part.source
            entry = f"{part.service};dur={part.duration_s * 1000:.1f}"
            if desc:
                entry += f';desc="{desc}"'
            entries.append(entry)
            if part.hedge is not None:
                entries.append(f'{part.service}-hedge;desc="{part.hedge}"')
        entries.append(f"total;dur={self.total_s * 1000:.1f}")
        return ", ".join(entries)

    def timings_ms(self) -> dict[str, float]:
        """Part name (and "total") to milliseconds, one decimal: the incremental answer's."""
        timings = {p.service: round(p.duration_s * 1000, 1) for p in self.parts}
        timings["total"] = round(self.total_s * 1000, 1)
        return timings


class RequestContext:
    __slots__ = (
        "_loop",
        "_report",
        "calls",
        "deadline_at",
        "degraded",
        "freshness",
        "headers",
        "id",
        "stale",
        "started",
        "trace",
        "waited",
    )

    def __init__(
        self, request_id: str, started: float | None = None, trace: RequestTrace | None = None
    ) -> None:
        self.id = request_id
        # perf_counter when the request's bytes arrived (bff.edge.protocol), else now.
        self.started = time.perf_counter() if started is None else started
        self.trace = trace
        self._loop = asyncio.get_running_loop()
        # The deadline on the loop's clock (every timer uses it); set by `start`.
        self.deadline_at = float("inf")
        # X-Request-ID and the forwarded client headers, sent on every downstream attempt;
        # X-Request-Timeout-Ms and the trace context are added per attempt.
        self.headers: dict[str, str] = {"X-Request-ID": request_id}
        self.calls: list[PartCall] = []
        self.degraded: dict[str, str] = {}  # filled by the fan-out
        self.stale: dict[str, int] = {}  # likewise
        # How long the request waited in this worker before the middleware ran it.
        self.waited = 0.0
        # What the answer may be cached as (bff.answer), when the handler says so.
        self.freshness: AnswerFreshness | None = None
        self._report: Report | None = None

    def start(self, budget_s: float) -> float:
        """Start the deadline: `budget_s` counted from when the request arrived (the time it
        waited in this worker is spent already). Returns what is left."""
        waited = time.perf_counter() - self.started
        now = self._loop.time()
        self.deadline_at = now + budget_s - waited
        return self.deadline_at - now

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once past)."""
        return self.deadline_at - self._loop.time()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def new_call(self, service: str) -> PartCall:
        call = PartCall(service, time.perf_counter() - self.started)
        self.calls.append(call)
        return call

    def report(self) -> Report:
        """Built on the first call, under one clock read; the same object afterwards.

        A call still "pending" once the answer is decided was cancelled by the fan-out and has
        not unwound yet: it is reported as cancelled, timed until now."""
        report = self._report
        if report is None:
            now = time.perf_counter() - self.started
            parts = tuple(
                [
                    PartReport(
                        call.service,
                        "cancelled" if call.outcome == "pending" else call.outcome,
                        now - call.started if call.duration is None else call.duration,
                        call.attempts,
                        call.source,
                        call.hedge,
                    )
                    for call in self.calls
                ]
            )
            report = self._report = Report(now, parts, self.degraded, self.stale)
        return report

    def server_timing_now(self) -> str:
        """Server-Timing of the parts finished so far (a streamed answer's header: its last
        line has them all), without fixing the report."""
        now = time.perf_counter() - self.started
        entries = [
            f"{call.service};dur={call.duration * 1000:.1f}"
            for call in self.calls
            if call.duration is not None and call.outcome == "ok"
        ]
        entries.append(f"total;dur={now * 1000:.1f}")
        return ", ".join(entries)

    @classmethod
    def background(cls, parent: RequestContext, budget_s: float) -> RequestContext:
        """A context for work that outlives the request (a stale-while-revalidate refresh):
        the request's id, trace and forwarded headers, a deadline of its own."""
        ctx = cls(parent.id, trace=parent.trace)
        ctx.headers = parent.headers
        ctx.start(budget_s)
        return ctx


# Made by the middleware: the request's id, clock, deadline and part calls.
CONTEXT = web.RequestKey("context", RequestContext)
# The verified token subject, when auth is on: sent downstream as X-User-ID.
SUBJECT = web.RequestKey("subject", str)
