"""The Retry-After a caller is given while a breaker refuses calls.

An open breaker answers 503 with `Retry-After`: the seconds until its probe may go out. Too
long and clients stay away from a service that is back; too short and they come back to
another 503.
"""

from __future__ import annotations

import time

import pytest

from bff.errors import CircuitOpen
from bff.resilience.breaker import ServiceBreaker
from bff.settings import BreakerSettings


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [5000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def opened(reset_timeout_s: float) -> ServiceBreaker:
    b = ServiceBreaker("svc", BreakerSettings(min_calls=1, reset_timeout_s=reset_timeout_s))
    b.admit().failure()
    assert b.state == "open"
    return b


class TestRetryAfterWhileOpen:
    """While open: the time left until the probe, counted from the moment it opened."""

    def test_closed_says_no_wait(self, clock: list[float]) -> None:
        assert ServiceBreaker("svc", BreakerSettings()).retry_after() == 0.0

    def test_counts_down_from_the_reset_timeout(self, clock: list[float]) -> None:
        b = opened(30.0)
        clock[0] += 12.5
        with pytest.raises(CircuitOpen) as refused:
            b.admit()
        assert refused.value.retry_after == pytest.approx(17.5)
        assert (refused.value.service, refused.value.detail) == ("svc", "breaker open")

    def test_refuses_until_the_reset_timeout_then_lets_one_probe_out(
        self, clock: list[float]
    ) -> None:
        b = opened(30.0)
        clock[0] += 29.5
        with pytest.raises(CircuitOpen):
            b.admit()
        clock[0] += 0.5  # exactly the reset timeout (binary fractions: no rounding)
        assert b.admit().probe
        assert b.state == "half-open"


class TestRetryAfterWhileProbing:
    """While the one probe is out, the others are told to come back in a second."""

    def test_one_second(self, clock: list[float]) -> None:
        b = opened(3.0)
        clock[0] += 3.0
        probe = b.admit()
        with pytest.raises(CircuitOpen) as refused:
            b.admit()
        assert refused.value.retry_after == 1.0
        assert str(refused.value) == "svc: circuit_open (breaker half-open, probe in flight)"
        assert b.retry_after() == 0.0  # the probe may go out now: it already has
        probe.success()
        assert b.state == "closed"
