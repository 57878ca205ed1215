"""The request context and its one report.

The outermost middleware makes one `RequestContext` per request (its id and the clock that
times it); the handler gives it the deadline and the headers that go downstream; each
downstream call records itself in a `PartCall`. Once the answer is decided, `report()` reads
every part under one `now` and keeps the result: Server-Timing, the access line, the metrics
and the span all read that one `Report`, so they can never disagree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bff.deadline import Deadline

if TYPE_CHECKING:
    from bff.errors import DownstreamError
    from bff.resilience.pool import Instance

__all__ = ["PartCall", "PartReport", "Report", "RequestContext"]


class PartCall:
    """One downstream call of one request: what Server-Timing, the log and the metrics read."""

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
        self.started = started
        self.duration: float | None = None
        self.attempts = 0
        self.last_instance: Instance | None = None
        self.error: DownstreamError | None = None
        # "ok", a contract reason ("timeout", "circuit_open", ...) or "cancelled".
        self.outcome = "pending"
        # Where the value came from when not from a live call of its own: "cache", "stale",
        # "coalesced" (Server-Timing's desc); "" for a live call.
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
    source: str  # "", "cache", "stale", "coalesced"
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
            entry = f"{part.service};dur={part.duration_s * 1000:.1f}"
            if part.desc:
                entry += f';desc="{part.desc}"'
            entries.append(entry)
            if part.hedge is not None:
                entries.append(f'{part.service}-hedge;desc="{part.hedge}"')
        entries.append(f"total;dur={self.total_s * 1000:.1f}")
        return ", ".join(entries)


class RequestContext:
    __slots__ = ("_report", "calls", "deadline", "degraded", "headers", "id", "stale", "started")

    def __init__(self, request_id: str, started: float | None = None) -> None:
        self.id = request_id
        # perf_counter when the request reached the outermost middleware.
        self.started = time.perf_counter() if started is None else started
        self.deadline: Deadline | None = None  # set by the handler, which knows the budget
        # X-Request-ID and the forwarded client headers, sent on every downstream attempt;
        # X-Request-Timeout-Ms is added per attempt.
        self.headers: dict[str, str] = {"X-Request-ID": request_id}
        self.calls: list[PartCall] = []
        self.degraded: dict[str, str] = {}  # filled by the aggregation
        self.stale: dict[str, int] = {}  # likewise
        self._report: Report | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def new_call(self, service: str) -> PartCall:
        call = PartCall(service, self.elapsed())
        self.calls.append(call)
        return call

    def report(self) -> Report:
        """Built on the first call, under one clock read; the same object afterwards.

        A call still "pending" once the answer is decided was cancelled by the aggregation
        and has not unwound yet: it is reported as cancelled, timed until now."""
        if self._report is None:
            now = self.elapsed()
            parts = tuple(
                PartReport(
                    call.service,
                    "cancelled" if call.outcome == "pending" else call.outcome,
                    call.duration if call.duration is not None else now - call.started,
                    call.attempts,
                    call.source,
                    call.hedge,
                )
                for call in self.calls
            )
            self._report = Report(now, parts, dict(self.degraded), dict(self.stale))
        return self._report
