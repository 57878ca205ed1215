"""What one request carries to its downstream calls, and what each call records.

`CallContext` is built once per request (deadline, ids, the few client headers we forward);
`CallState` is one per downstream call and is what Server-Timing and the access log read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bff.deadline import Deadline

if TYPE_CHECKING:
    from bff.errors import DownstreamError
    from bff.resilience.pool import Instance


class CallContext:
    __slots__ = ("calls", "deadline", "degraded", "headers")

    def __init__(self, deadline: Deadline, headers: dict[str, str]) -> None:
        self.deadline = deadline
        # X-Request-ID and the forwarded client headers, sent on every downstream attempt;
        # X-Request-Timeout-Ms is added per attempt.
        self.headers = headers
        self.calls: list[CallState] = []
        # Part -> reason, as in the answer's `degraded` (filled by the aggregation): what the
        # access log, the span's events and the degraded counter report.
        self.degraded: dict[str, str] = {}

    def new_call(self, service: str) -> CallState:
        state = CallState(service, self.deadline.elapsed())
        self.calls.append(state)
        return state


class CallState:
    __slots__ = (
        "attempts",
        "duration",
        "error",
        "hedge",
        "last_instance",
        "outcome",
        "service",
        "started",
        "value",
    )

    def __init__(self, service: str, started: float) -> None:
        self.service = service
        self.started = started
        self.duration: float | None = None
        self.attempts = 0
        self.last_instance: Instance | None = None
        self.value: Any = None
        self.error: DownstreamError | None = None
        # What became of this call's hedge, if one was sent: "won", "lost" or "failed".
        self.hedge: str | None = None
        # "ok", a contract reason ("timeout", "circuit_open", ...) or "cancelled".
        self.outcome = "pending"

    def report(self, now: float) -> tuple[str, float]:
        """(outcome, seconds) as Server-Timing, the access log and the metrics show them.

        A call still "pending" once the answer is decided was cancelled by the aggregation
        and has not unwound yet: it is reported as cancelled, timed until `now`.
        """
        outcome = "cancelled" if self.outcome == "pending" else self.outcome
        duration = self.duration if self.duration is not None else now - self.started
        return outcome, duration
