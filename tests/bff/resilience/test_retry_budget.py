"""The retry budget of each service (bff.resilience.policy.RetryBudget): retries add at most
a ratio of first attempts (20 % by default) plus a small floor, over a sliding window, so a
failing service sees ~1.2x the calls instead of 3x."""

from __future__ import annotations

import time

import pytest
from bff_support import MakeBff, Mocks, get_many

from bff.resilience.policy import RetryBudget


class TestTheBudget:
    """The budget on its own: a floor of retries, then a ratio of first attempts, over a
    sliding window."""

    def test_floor_then_ratio(self) -> None:
        budget = RetryBudget(ratio=0.2, min_retries=3, window_s=10)
        assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]
        for _ in range(10):
            budget.record_first_attempt()
        # 0.2 * 10 + 3 = 5 retries in the window: two more than the floor alone.
        assert [budget.try_spend() for _ in range(3)] == [True, True, False]

    def test_the_window_slides(self, monkeypatch: pytest.MonkeyPatch) -> None:
        now = [1000.0]
        monkeypatch.setattr(time, "monotonic", lambda: now[0])
        budget = RetryBudget(ratio=0.0, min_retries=1, window_s=3)
        assert budget.try_spend()
        assert not budget.try_spend()
        now[0] += 3
        assert budget.try_spend()  # the old retry left the window
        assert budget.counts == (0, 1)


class TestRetryBudget:
    """Retries add at most ~20 % of first attempts (plus a small floor), so a failing service
    sees ~1.2x the calls instead of 3x."""

    @pytest.mark.parametrize("error_rate", [0.5, 1.0])
    async def test_budget_caps_call_amplification(
        self, make_uncached_bff: MakeBff, mocks: Mocks, error_rate: float
    ) -> None:
        # A breaker that never opens, so only the budget limits the calls.
        bff = await make_uncached_bff({"reviews.breaker.min_calls": 100_000})
        await mocks.faults("reviews", latency_ms=1, error_rate=error_rate, seed=3)
        n = 200
        results = await get_many(bff, n)
        calls = await mocks.requests("reviews")
        complete = sum(1 for status, body in results if status == 200 and not body["degraded"])
        print(f"error_rate={error_rate}: {calls} calls for {n} requests, {complete} complete")
        assert calls <= n * 1.2 + 3 + 2  # ratio, floor, and retries already in flight
        if error_rate < 1:
            # The budget still saves some answers: more than the 50 % a single try gives.
            assert complete > n * 0.5
