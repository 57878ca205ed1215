"""Only the probe decides whether a half-open breaker closes: a call admitted while the
breaker was still closed, and answering late, neither closes nor re-opens it, nor lets a
second probe out. Otherwise one slow call from before an outage could send a whole burst of
traffic back to a service that is still down."""

from __future__ import annotations

import time

import pytest

from bff.errors import CircuitOpen
from bff.resilience.breaker import ServiceBreaker
from bff.settings import BreakerSettings


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [700.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def half_open_with_a_late_call(clock: list[float]) -> tuple[ServiceBreaker, object]:
    b = ServiceBreaker("svc", BreakerSettings(min_calls=1, reset_timeout_s=3.0))
    late = b.admit()  # admitted while closed, still in flight
    assert not late.probe
    b.admit().failure()
    assert b.state == "open"
    clock[0] += 3.0
    assert b.admit().probe
    assert b.state == "half-open"
    return b, late


class TestLateCallsDoNotDecide:
    """A call from the closed spell reports after the probe went out: nothing changes."""

    @pytest.mark.parametrize("outcome", ["success", "failure", "release"])
    def test_the_breaker_stays_half_open_with_its_one_probe(
        self, clock: list[float], outcome: str
    ) -> None:
        b, late = half_open_with_a_late_call(clock)
        getattr(late, outcome)()
        assert b.state == "half-open"
        with pytest.raises(CircuitOpen):
            b.admit()  # the probe is still the only call out
