"""The pause before a retry: full jitter between zero and an exponential ceiling.

A caller sees this pause as latency: a ceiling that grows too fast (or starts above zero)
makes a transient error cost more than it must; one that does not grow hammers a sick
service with retries at once.
"""

from __future__ import annotations

import random

import pytest

from bff.client import RetrySchedule
from bff.settings import RetrySettings


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    schedule = RetrySchedule(RetrySettings(backoff_base_s=base_s, backoff_max_s=max_s))
    return schedule.get_timeout(attempt)


class TestBackoffCeiling:
    """Attempt n waits uniformly in [0, min(max, base * 2**(n-1))]: the schedule is
    aiohttp-retry's public options object (`RetryOptionsBase.get_timeout`)."""

    @pytest.mark.parametrize(
        ("attempt", "ceiling"),
        [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (30, 1.0)],
    )
    def test_the_range_drawn_from(
        self, monkeypatch: pytest.MonkeyPatch, attempt: int, ceiling: float
    ) -> None:
        drawn: list[tuple[float, float]] = []

        def uniform(low: float, high: float) -> float:
            drawn.append((low, high))
            return high

        monkeypatch.setattr(random, "uniform", uniform)
        assert backoff_delay(attempt, 0.1, 1.0) == pytest.approx(ceiling)
        [(low, high)] = drawn
        assert low == 0.0
        assert high == pytest.approx(ceiling)

    def test_the_draws_spread_over_the_whole_range(self) -> None:
        """Full jitter: many callers' retries spread out instead of arriving together."""
        random.seed(7)
        delays = [backoff_delay(3, 0.1, 1.0) for _ in range(400)]
        assert all(0.0 <= d <= 0.4 for d in delays)
        assert min(delays) < 0.05
        assert max(delays) > 0.35
