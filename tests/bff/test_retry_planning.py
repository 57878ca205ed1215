"""When a failed attempt gets another one, and after how long (`DownstreamClient.plan_retry`).

A retry is planned only while attempts remain and the breaker is not open, only if the deadline
still holds the pause plus the service's latency floor, and only with a token from the retry
budget, taken last. A user sees each rule: a retry planned on the last attempt or into an open
breaker makes the answer wait a backoff for nothing and spends a token that another request's
retry needed; a `Retry-After` ignored hammers a service that asked for a pause.
"""

from __future__ import annotations

import random
from typing import Any, cast

import aiohttp
import pytest
from call_support import call_context
from yarl import URL

from bff.client import DownstreamClient
from bff.context import RequestContext
from bff.errors import DownstreamError, DownstreamUnavailable
from bff.settings import BreakerSettings, DownstreamSettings, RetrySettings

_UNUSED_SESSION = cast(aiohttp.ClientSession, None)  # planning never sends anything


class Call:
    """A call that has made `attempts` attempts, the last one failed: what does the client
    plan next?"""

    def __init__(self, client: DownstreamClient, ctx: RequestContext, attempts: int) -> None:
        self.client = client
        self.ctx = ctx
        self.attempts = attempts

    def plan_retry(self, error: DownstreamError) -> float | None:
        return self.client.plan_retry(error, self.attempts, self.ctx)


def call(deadline_s: float = 5.0, attempts: int = 1, margin_s: float = 0.005, **retry: Any) -> Call:
    settings = DownstreamSettings(
        "reviews",
        (URL("http://127.0.0.1:1"),),
        retry=RetrySettings(**{"backoff_base_s": 0.010, "backoff_max_s": 0.060, **retry}),
        breaker=BreakerSettings(min_calls=1, reset_timeout_s=60.0),
    )
    client = DownstreamClient(settings, _UNUSED_SESSION, propagation_margin_s=margin_s)
    return Call(client, call_context(deadline_s), attempts)


def failed(retry_after: float | None = None) -> DownstreamError:
    return DownstreamUnavailable("reviews", "status 503", retry_after=retry_after)


class TestRetryPlanned:
    """Attempts left, breaker closed, time and budget to spare: a short jittered pause."""

    async def test_a_pause_within_the_backoff_and_one_token_spent(self) -> None:
        c = call(attempts=1)
        delay = c.plan_retry(failed())
        assert delay is not None
        assert 0.0 <= delay <= 0.010
        assert c.client.budget.counts == (0, 1)

    async def test_the_second_retry_may_pause_twice_as_long(self) -> None:
        c = call(attempts=2)
        delays = [c.plan_retry(failed()) for _ in range(3)]
        assert all(d is not None and 0.0 <= d <= 0.020 for d in delays)

    async def test_the_pause_grows_from_the_base_to_the_cap(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of the range
        ceilings = [call(attempts=n, max_attempts=9).plan_retry(failed()) for n in (1, 2, 3, 4)]
        assert ceilings == pytest.approx([0.010, 0.020, 0.040, 0.060])

    async def test_a_longer_retry_after_is_honoured(self) -> None:
        assert call().plan_retry(failed(retry_after=0.25)) == 0.25


class _Frozen(RequestContext):
    """A deadline frozen at `left` seconds (binary fractions, so the sums below are exact)."""

    __slots__ = ("left",)

    def __init__(self, left: float) -> None:
        super().__init__("req-test")
        self.left = left

    def remaining(self) -> float:
        return self.left


class TestTheRetryMustFit:
    """After the pause, the time left must hold the latency floor plus the margin: exactly
    enough is enough, a little less is not."""

    def fitted(self, retry_after: float) -> float | None:
        # floor 15.625 ms + margin 7.8125 ms = 23.4375 ms must be left after the pause.
        c = call(min_attempt_s=0.015625, margin_s=0.0078125)
        c.ctx = _Frozen(0.5)
        return c.plan_retry(failed(retry_after=retry_after))

    async def test_exactly_enough(self) -> None:
        assert self.fitted(0.5 - 0.0234375) == 0.4765625

    async def test_a_little_less(self) -> None:
        assert self.fitted(0.48) is None

    async def test_a_hair_less(self) -> None:
        """7.5 us short of the floor plus the margin: no retry."""
        assert self.fitted(0.5 - 0.02343) is None


class TestNoRetry:
    """No retry, and no token spent, when any rule says no."""

    async def test_after_the_last_attempt(self) -> None:
        c = call(attempts=3, max_attempts=3)
        assert c.plan_retry(failed()) is None
        assert c.client.budget.counts == (0, 0)

    async def test_into_an_open_breaker(self) -> None:
        c = call(attempts=1)
        c.client.breaker.admit().failure()
        assert c.client.breaker.state == "open"
        assert c.plan_retry(failed()) is None
        assert c.client.budget.counts == (0, 0)

    async def test_when_the_pause_would_not_leave_the_latency_floor(self) -> None:
        c = call(deadline_s=1.0)
        assert c.plan_retry(failed(retry_after=0.99)) is None
        assert c.client.budget.counts == (0, 0)

    async def test_when_the_deadline_is_nearly_spent(self) -> None:
        c = call(deadline_s=0.012)  # the floor (10 ms) + margin (5 ms) no longer fit
        assert c.plan_retry(failed()) is None

    async def test_when_the_budget_is_spent(self) -> None:
        c = call(budget_min_retries=1, budget_ratio=0.0)
        assert c.plan_retry(failed()) is not None
        assert c.plan_retry(failed()) is None
        assert c.client.budget.counts == (0, 1)
