"""Circuit breaker per service: pybreaker's state machine, opened on a failure *rate* or on a
run of consecutive failures.

pybreaker cannot guard a coroutine: decorating one counts nothing, and
`with breaker.calling(): await ...` turns a cancellation into either a failure or a success.
So the network call never runs inside pybreaker. The breaker is fed outcomes instead:

    permit = breaker.admit()      # raises CircuitOpen: no call at all
    ... the attempt ...
    permit.success() | permit.failure() | permit.release()   # release = neutral

When to open is decided here, not by pybreaker's own count. Two rules, either one opens it:

- the rate (resilience4j's time-based window): over a sliding window of `window_s` seconds,
  once at least `min_calls` outcomes are in, the share of failures reaches `failure_rate`. A
  run of bad luck on a healthy service does not open it; a service failing most calls does.
- the run (Envoy's `consecutive_5xx`, Finagle's failure accrual): the last
  `max(CONSECUTIVE_FAILURES, min_calls)` outcomes all failed, whatever the window held before.
  The rate alone is slow when a service goes down after a healthy spell: the window still
  holds the good minutes, and at 80 % of a 10 s window a worker that had made 75 good calls
  needs 300 failures first (measured, 2 workers, reviews down after 150 requests at 10 %
  transient errors: 135 calls in 100 requests, breaker still closed).

`CONSECUTIVE_FAILURES` is 20, the default `min_calls`: it opens a service that went hard down
within 20 of its calls per worker, and chance practically never makes such a run. A service
failing half its calls at random (one the retries and the rate rule are meant to ride out)
makes one in 2^20, once in a million calls; at 35 % failures 0.35^20, under one in a billion
(`tests/bff/resilience/test_breaker.py` measures both ends). A run of 10 would open such a
half-failing service once every thousand calls. It is never shorter than `min_calls`: a
breaker told not to judge on fewer calls (`min_calls` of 1000, a breaker that does not open)
is not opened by the run either. pybreaker still owns the states and their listeners
(metrics, logs, spans): we move it with its public `open()`, `half_open()` and `close()`.

`release()` is for outcomes that say nothing about the service's health (the BFF cancelled the
call, the client's own short budget cut it, or the answer was bad for one id only): they are
not counted at all (nor do they break a run), and a released probe leaves the breaker
half-open for the next caller. Every permit is released in a `finally`; reporting twice is
harmless (the first report wins).

pybreaker's half-open state lets every concurrent caller through; we admit exactly one probe
and fail the others fast until it reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pybreaker

from bff.errors import CircuitOpen
from bff.resilience.window import SlidingCounts
from bff.settings import BreakerSettings

TransitionHook = Callable[[str, str, str], None]  # (service, old state, new state)

# Failures in a row that open the breaker, whatever the window holds (the module docstring
# says why 20); never fewer than the settings' `min_calls`.
CONSECUTIVE_FAILURES = 20

_OK, _FAILED = 0, 1


class ServiceBreaker:
    __slots__ = (
        "_cb",
        "_failed_in_a_row",
        "_opened_at",
        "_outcomes",
        "_probe_in_flight",
        "_run_to_open",
        "name",
        "settings",
        "state",
    )

    def __init__(
        self, name: str, settings: BreakerSettings, on_transition: TransitionHook | None = None
    ) -> None:
        self.name = name
        self.settings = settings
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._outcomes = SlidingCounts(2, settings.window_s)
        self._failed_in_a_row = 0
        self._run_to_open = max(CONSECUTIVE_FAILURES, settings.min_calls)
        # 'closed', 'open' or 'half-open': pybreaker's state, kept by its listener (read on
        # every attempt, where pybreaker's property chain cost three calls).
        self.state = str(pybreaker.STATE_CLOSED)
        self._cb = pybreaker.CircuitBreaker(
            reset_timeout=settings.reset_timeout_s,
            throw_new_error_on_trip=False,
            name=name,
            listeners=[_Listener(self, on_transition)],
        )

    @property
    def counts(self) -> tuple[int, int]:
        """(successes, failures) in the current window (closed state only)."""
        self._outcomes.current()
        ok, failed = self._outcomes.totals
        return ok, failed

    def retry_after(self) -> float:
        """Seconds until the next probe may go out (0 when closed)."""
        if self.state == pybreaker.STATE_CLOSED:
            return 0.0
        left = self._opened_at + self.settings.reset_timeout_s - time.monotonic()
        return max(left, 0.0)

    def admit(self) -> Permit:
        state = self.state
        if state == pybreaker.STATE_CLOSED:
            return Permit(self, probe=False)
        if state == pybreaker.STATE_OPEN:
            if time.monotonic() - self._opened_at < self.settings.reset_timeout_s:
                raise CircuitOpen(self.name, "breaker open", retry_after=self.retry_after())
            self._cb.half_open()
        if self._probe_in_flight:
            raise CircuitOpen(self.name, "breaker half-open, probe in flight", retry_after=1.0)
        self._probe_in_flight = True
        return Permit(self, probe=True)

    def _record(self, *, failed: bool, probe: bool) -> None:
        state = self.state
        if probe and state == pybreaker.STATE_HALF_OPEN:
            self._cb.open() if failed else self._cb.close()
            return
        # An outcome that lands after the breaker opened (a call admitted while it was
        # closed) changes nothing: the probe decides.
        if state != pybreaker.STATE_CLOSED:
            return
        outcomes = self._outcomes
        outcomes.add(_FAILED if failed else _OK)
        if not failed:
            self._failed_in_a_row = 0
            return
        self._failed_in_a_row += 1
        ok, failures = outcomes.totals
        calls = ok + failures
        if self._failed_in_a_row >= self._run_to_open or (
            calls >= self.settings.min_calls and failures >= calls * self.settings.failure_rate
        ):
            self._cb.open()

    def _transitioned(self, new_state: str) -> None:
        self.state = new_state
        # Each closed spell starts with an empty window and no run: what happened before the
        # outage (or during it) says nothing about the service the probe just found healthy.
        self._outcomes.clear()
        self._failed_in_a_row = 0
        if new_state == pybreaker.STATE_OPEN:
            self._opened_at = time.monotonic()


class Permit:
    """The right to make one attempt; the first report of how it went is the one that counts
    (`done` says whether one was made: a caller may skip a `release()` that would do nothing)."""

    __slots__ = ("_breaker", "done", "probe")

    def __init__(self, breaker: ServiceBreaker, *, probe: bool) -> None:
        self._breaker = breaker
        self.probe = probe
        self.done = False

    def success(self) -> None:
        if not self.done:
            self.done = True
            if self.probe:
                self._breaker._probe_in_flight = False
            self._breaker._record(failed=False, probe=self.probe)

    def failure(self) -> None:
        if not self.done:
            self.done = True
            if self.probe:
                self._breaker._probe_in_flight = False
            self._breaker._record(failed=True, probe=self.probe)

    def release(self) -> None:
        """Neutral: nothing is counted (a probe's slot is freed for the next caller)."""
        if not self.done:
            self.done = True
            if self.probe:
                self._breaker._probe_in_flight = False


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, owner: ServiceBreaker, hook: TransitionHook | None) -> None:
        self._owner = owner
        self._hook = hook

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._owner._transitioned(str(new_state.name))
        if self._hook is not None:
            old = old_state.name if old_state is not None else "none"
            self._hook(self._owner.name, str(old), str(new_state.name))
