"""When to hedge a call: after the service's recent p95, within a budget, never blindly.

A call that has not answered after the service's recently observed p95 latency, plus a
half (`HEADROOM`), bounded by `min_delay_s` and `max_delay_s`, is one of the slow few; a
second request to another instance (the same one if there is only one) usually answers
sooner than the first would. `delay()` says when to consider it; `admit()`, at that moment,
whether to send it:

- the hedge budget has a token: at most `budget_ratio` of first calls (10%) are hedged,
  over a sliding window. The budget is separate from the retry budget: retries repair
  failures and hedges cut latency tails, and a service that is both slow and failing must
  not lose its retries to hedges (or the reverse). Worst case, a service sees 1 + 10%
  (hedges) + 20% (retries, only on failures) of its first calls.
- the deadline still holds a typical answer (the service's p90 plus the margin): a hedge
  that cannot answer in time is load for nothing.
- the service is not failing (at most `FAILING_SHARE` of its calls in the breaker's window
  failed): hedges are for a healthy service's stragglers; failures are the retries' business,
  under their own budget, so a failing service still sees at most ~1.2x the calls.
- our own loop is not running late (the hedge timer fired within `LATE_S` of its time, and
  the loop-lag probe is calm): else the first request has most likely answered and its
  answer waits in our queue; a hedge would only add to the queue.

The breaker is asked last, by the caller: a hedge needs its own permit, and an open breaker
refuses it like any other attempt.
"""

from __future__ import annotations

from bff.resilience.budget import RetryBudget
from bff.resilience.latency import LatencyWindow
from bff.settings.downstream import HedgeSettings

# An answer just past the p95 is ordinary: our own loop's scheduling alone moves answers by
# tens of ms on a busy worker. Hedging right at the p95 hedges ~5% of the calls of a healthy
# service by definition; at 1.25x the p95, ~2-3% still were (seed latencies, busy 2-core
# machine, all lost); at 1.5x, stragglers only.
HEADROOM = 1.5
# A hedge timer that fires later than this means our loop is congested right now: the first
# answer has most likely arrived and waits in our queue (at seed latencies on a loaded worker,
# every hedge sent without this check lost: ~3% extra calls for nothing).
LATE_S = 0.003
FAILING_SHARE = 0.1


class HedgePolicy:
    __slots__ = ("_budget", "_latency", "_max", "_min", "enabled")

    def __init__(self, settings: HedgeSettings, latency: LatencyWindow) -> None:
        self.enabled = settings.enabled
        self._latency = latency
        self._min = settings.min_delay_s
        self._max = settings.max_delay_s
        self._budget = RetryBudget(
            settings.budget_ratio, settings.budget_min, settings.budget_window_s
        )

    def record_call(self) -> None:
        """Count a first call: the base the budget's share is taken from."""
        self._budget.record_first_attempt()

    def delay(self) -> float | None:
        """Seconds to wait for the first answer before considering a hedge; None: never
        (hedging off, or too few answers seen to know the service's p95)."""
        if not self.enabled:
            return None
        p95 = self._latency.p95()
        if p95 is None:
            return None
        return min(self._max, max(self._min, p95 * HEADROOM))

    def admit(
        self, remaining_s: float, margin_s: float, loop_late: bool, calls: tuple[int, int]
    ) -> str | None:
        """None when a hedge may go now, else why not ("deadline", "failing", "loop_lag",
        "budget"). `calls`: the service's (successes, failures) in the breaker's window.
        The budget's token is spent here, last, so a hedge refused for another reason costs
        none."""
        if remaining_s < self._latency.floor() + margin_s:
            return "deadline"
        ok, failed = calls
        if failed > FAILING_SHARE * (ok + failed):
            return "failing"
        if loop_late:
            return "loop_lag"
        if not self._budget.try_spend():
            return "budget"
        return None

    @property
    def budget_counts(self) -> tuple[int, int]:
        """(first calls, hedges) inside the budget's window."""
        return self._budget.counts
