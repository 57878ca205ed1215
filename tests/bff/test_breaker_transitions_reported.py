"""Every breaker transition reaches the hook (a log line, the breaker gauge, a span event)
with the service's name and both states: an operator reading "breaker_transition" must see
which service went from what to what."""

from __future__ import annotations

import time

import pytest

from bff.resilience.breaker import ServiceBreaker
from bff.settings import BreakerSettings


class TestTransitionsReported:
    """The hook hears (service, old state, new state) for each move, in order."""

    def test_open_probe_close_and_reopen(self, monkeypatch: pytest.MonkeyPatch) -> None:
        now = [100.0]
        monkeypatch.setattr(time, "monotonic", lambda: now[0])
        heard: list[tuple[str, str, str]] = []
        b = ServiceBreaker(
            "reviews",
            BreakerSettings(min_calls=1, reset_timeout_s=3.0),
            lambda *transition: heard.append(transition),
        )
        b.admit().failure()
        now[0] += 3.0
        b.admit().success()
        b.admit().failure()
        now[0] += 3.0
        b.admit().failure()
        assert heard == [
            ("reviews", "closed", "open"),
            ("reviews", "open", "half-open"),
            ("reviews", "half-open", "closed"),
            ("reviews", "closed", "open"),
            ("reviews", "open", "half-open"),
            ("reviews", "half-open", "open"),
        ]
