"""Circuit breaker per service: pybreaker's state machine, fed outcomes, never awaited.

pybreaker cannot guard a coroutine (LIBRARY-NOTES): decorating one counts nothing, and
`with breaker.calling(): await ...` turns a cancellation into either a failure or a success.
So the network call never runs inside pybreaker. Instead:

    permit = breaker.admit()      # raises CircuitOpen: no call at all
    ... the attempt ...
    permit.success() | permit.failure(exc) | permit.release()   # release = neutral

`release()` is for outcomes that say nothing about the service (the BFF cancelled the call,
or the client's own short budget cut it): they neither count as failures nor reset the
failure count, and a cancelled probe does not close a half-open breaker.

pybreaker's half-open state lets every concurrent caller through; we admit exactly one probe
and fail the others fast until it reports.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pybreaker

from bff.errors import CircuitOpen
from bff.settings import BreakerSettings

TransitionHook = Callable[[str, str, str], None]  # (service, old state, new state)


class _Outcome(Exception):
    """Carries a failure into pybreaker's bookkeeping."""


def _succeed() -> None:
    return None


def _fail() -> None:
    raise _Outcome


class ServiceBreaker:
    __slots__ = ("_cb", "_opened_at", "_probe_in_flight", "name", "settings")

    def __init__(
        self, name: str, settings: BreakerSettings, on_transition: TransitionHook | None = None
    ) -> None:
        self.name = name
        self.settings = settings
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._cb = pybreaker.CircuitBreaker(
            fail_max=settings.fail_max,
            reset_timeout=settings.reset_timeout_s,
            throw_new_error_on_trip=False,
            name=name,
            listeners=[_Listener(self, on_transition)],
        )

    @property
    def state(self) -> str:
        """'closed', 'open' or 'half-open'."""
        return str(self._cb.current_state)

    @property
    def fail_counter(self) -> int:
        return int(self._cb.fail_counter)

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

    def _record(self, fn: Callable[[], None]) -> None:
        # An outcome that lands after another caller reopened the breaker changes nothing.
        if self.state == pybreaker.STATE_OPEN:
            return
        with contextlib.suppress(_Outcome, pybreaker.CircuitBreakerError):
            self._cb.call(fn)

    def _mark_opened(self) -> None:
        self._opened_at = time.monotonic()


class Permit:
    """The right to make one attempt; report how it went exactly once."""

    __slots__ = ("_breaker", "_done", "probe")

    def __init__(self, breaker: ServiceBreaker, *, probe: bool) -> None:
        self._breaker = breaker
        self.probe = probe
        self._done = False

    def success(self) -> None:
        if self._finish():
            breaker = self._breaker
            # The common case: closed, nothing counted. pybreaker would take its lock only to
            # zero a counter that is already 0 (its listeners' `success` are no-ops): skip it.
            if not self.probe and breaker.fail_counter == 0 and breaker.state == "closed":
                return
            breaker._record(_succeed)

    def failure(self) -> None:
        if self._finish():
            self._breaker._record(_fail)

    def release(self) -> None:
        self._finish()

    def _finish(self) -> bool:
        if self._done:
            return False
        self._done = True
        if self.probe:
            self._breaker._probe_in_flight = False
        return True


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
        if new_state.name == pybreaker.STATE_OPEN:
            self._owner._mark_opened()
        if self._hook is not None:
            old = old_state.name if old_state is not None else "none"
            self._hook(self._owner.name, str(old), str(new_state.name))
