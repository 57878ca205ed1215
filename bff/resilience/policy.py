"""The figures a call's retries and hedges are judged by: the service's recent latency, the
retry and hedge budgets, and the rule of when to hedge.

`LatencyWindow` keeps a service's recent successful attempt durations: its p90 answers "is
there still time for one more attempt?" from what the service really does, not from a
constant, and its p95 sets the hedge delay.

`RetryBudget` (Envoy's and Finagle's idea): retries may add at most `ratio` of first attempts,
plus a floor, over a sliding window of one-second buckets, so a dead service sees about
`1 + ratio` times the calls instead of `max_attempts` times, while a healthy service with the
odd transient error gets every retry it needs. The hedges have a budget of their own.

`HedgePolicy`: a call that has not answered after the service's recent p95, plus a half
(`HEADROOM`), bounded by `min_delay_s` and `max_delay_s`, is one of the slow few; a second
request to another instance (the same one if there is only one) usually answers sooner than
the first would. `delay()` says when to consider it; `admit()`, at that moment, whether to
send it:

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
- our own loop is not running late (the hedge timer fired within `HEDGE_LATE_S` of its time,
  and the loop-lag probe is calm): else the first request has most likely answered and its
  answer waits in our queue; a hedge would only add to the queue.

The breaker is asked last, by the client: a hedge needs its own permit, and an open breaker
refuses it like any other attempt.
"""

from __future__ import annotations

from collections import deque

from bff.resilience.window import SlidingCounts
from bff.settings.downstream import HedgeSettings

__all__ = [
    "FAILING_SHARE",
    "HEADROOM",
    "HEDGE_LATE_S",
    "HedgePolicy",
    "LatencyWindow",
    "RetryBudget",
]

# An answer just past the p95 is ordinary: our own loop's scheduling alone moves answers by
# tens of ms on a busy worker. Hedging right at the p95 hedges ~5% of the calls of a healthy
# service by definition; at 1.25x the p95, ~2-3% still were (seed latencies, busy 2-core
# machine, all lost); at 1.5x, stragglers only.
HEADROOM = 1.5
# A hedge timer that fires later than this means our loop is congested right now: the first
# answer has most likely arrived and waits in our queue (at seed latencies on a loaded worker,
# every hedge sent without this check lost: ~3% extra calls for nothing).
HEDGE_LATE_S = 0.003
FAILING_SHARE = 0.1
# Below this many successes the percentiles say nothing yet.
_MIN_SAMPLES = 8
_REFRESH = 8  # a sort of 64 floats is ~3 us; the p95 moves slowly anyway
_FIRSTS, _SPENT = 0, 1


class LatencyWindow:
    """The last `size` successful attempt durations of one service. Recording is O(1);
    `floor()` sorts only when a retry or hedge is being considered, and `p95()` (the hedge
    delay, asked on every call) re-sorts at most once every `_REFRESH` new samples."""

    __slots__ = ("_default", "_p95", "_samples", "_stale")

    def __init__(self, default_s: float, size: int = 64) -> None:
        self._default = default_s
        self._samples: deque[float] = deque(maxlen=size)
        self._p95: float | None = None
        self._stale = 0

    def record(self, seconds: float) -> None:
        self._samples.append(seconds)
        self._stale += 1

    def p95(self) -> float | None:
        """p95 of recent successes; None before there are 8 of them."""
        if self._stale >= _REFRESH or (self._p95 is None and len(self._samples) >= _MIN_SAMPLES):
            ordered = sorted(self._samples)
            self._p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
            self._stale = 0
        return self._p95

    def floor(self) -> float:
        """p90 of recent successes, or the configured minimum before there are 8 of them."""
        if len(self._samples) < _MIN_SAMPLES:
            return self._default
        ordered = sorted(self._samples)
        return max(self._default, ordered[int(len(ordered) * 0.9) - 1])

    def percentiles(self) -> dict[str, float] | None:
        """p50, p90 and p99 of the recent successes in ms (the status page), None when empty."""
        if not self._samples:
            return None
        ordered = sorted(self._samples)
        last = len(ordered) - 1
        return {
            name: round(ordered[min(last, int(len(ordered) * q))] * 1000, 1)
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        }


class RetryBudget:
    __slots__ = ("_counts", "_min", "_ratio", "exhausted")

    def __init__(self, ratio: float, min_retries: int, window_s: float) -> None:
        self._ratio = ratio
        self._min = min_retries
        self._counts = SlidingCounts(2, window_s)
        self.exhausted = 0  # spends refused since start (the retry budget's metric)

    def record_first_attempt(self) -> None:
        self._counts.add(_FIRSTS)

    def try_spend(self) -> bool:
        """Take one token from the budget; False when the window's allowance is used up."""
        counts = self._counts
        counts.current()
        firsts, spent = counts.totals
        if spent >= firsts * self._ratio + self._min:
            self.exhausted += 1
            return False
        counts.add(_SPENT)
        return True

    @property
    def counts(self) -> tuple[int, int]:
        """(first attempts, tokens spent) inside the current window."""
        self._counts.current()
        firsts, spent = self._counts.totals
        return firsts, spent


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
