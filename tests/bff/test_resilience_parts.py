"""The resilience parts on their own: retry budget, instance pool, breaker permits, Retry-After."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web
from bff_support import MakeBff, Mocks
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bff.errors import CircuitOpen
from bff.keys import CLIENTS
from bff.resilience.breaker import ServiceBreaker
from bff.resilience.loop_lag import LoopLag
from bff.resilience.policy import LatencyWindow, RetryBudget
from bff.resilience.pool import InstancePool
from bff.settings import BreakerSettings, OutlierSettings


class TestRetryBudget:
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


class TestInstancePool:
    SETTINGS = OutlierSettings(consecutive_failures=2, base_ejection_s=10, max_ejection_s=40)

    def urls(self, n: int) -> tuple[URL, ...]:
        return tuple(URL(f"http://127.0.0.{i + 1}:1") for i in range(n))

    def test_power_of_two_choices_prefers_fewer_in_flight(self) -> None:
        pool = InstancePool(self.urls(2), self.SETTINGS)
        busy, idle = pool.instances
        busy.in_flight = 5
        assert all(pool.pick() is idle for _ in range(20))

    def test_avoid_sends_a_retry_elsewhere(self) -> None:
        pool = InstancePool(self.urls(3), self.SETTINGS)
        first = pool.instances[0]
        assert all(pool.pick(avoid=first) is not first for _ in range(50))

    def test_ejection_grows_and_never_takes_the_last_instance(self) -> None:
        pool = InstancePool(self.urls(2), self.SETTINGS)
        a, b = pool.instances
        pool.record_failure(a)
        assert not pool.is_ejected(a)
        pool.record_failure(a)
        assert pool.is_ejected(a)
        first_until = a.ejected_until
        assert all(pool.pick() is b for _ in range(20))
        # b fails too, but it is the last healthy one: it stays.
        for _ in range(5):
            pool.record_failure(b)
        assert not pool.is_ejected(b)
        # a comes back and fails again soon: a longer ejection (10 s, then 20 s).
        a.ejected_until = time.monotonic() - 1
        pool.record_failure(a)
        pool.record_failure(a)
        assert a.ejected_until - time.monotonic() > 15
        assert first_until - time.monotonic() < 11


class TestBreakerPermits:
    def test_release_is_neutral_and_frees_the_probe(self) -> None:
        transitions: list[tuple[str, str, str]] = []
        breaker = ServiceBreaker(
            "svc",
            BreakerSettings(min_calls=2, reset_timeout_s=0.01),
            lambda s, old, new: transitions.append((s, old, new)),
        )
        breaker.admit().failure()
        breaker.admit().release()  # neutral: does not reset the count ...
        assert breaker.counts == (0, 1)
        breaker.admit().failure()  # ... so this second failure opens it
        assert breaker.state == "open"
        with pytest.raises(CircuitOpen):
            breaker.admit()
        time.sleep(0.02)
        probe = breaker.admit()
        assert probe.probe
        with pytest.raises(CircuitOpen):
            breaker.admit()  # one probe at a time
        probe.release()
        assert breaker.state == "half-open"
        breaker.admit().success()
        assert breaker.state == "closed"
        assert [t[2] for t in transitions] == ["open", "half-open", "closed"]

    def test_a_permit_reports_once(self) -> None:
        breaker = ServiceBreaker("svc", BreakerSettings(min_calls=1, reset_timeout_s=60))
        permit = breaker.admit()
        permit.success()
        permit.failure()  # ignored: already reported
        assert breaker.state == "closed"


def test_latency_floor_uses_recent_p90() -> None:
    window = LatencyWindow(default_s=0.01)
    assert window.floor() == 0.01
    for ms in range(1, 21):
        window.record(ms / 1000)
    assert 0.017 <= window.floor() <= 0.019


class TestRetryAfter:
    """A 503's `Retry-After` is honoured when it fits the deadline, and ends retries if not."""

    async def _flaky_reviews(self, aiohttp_server: AiohttpServer, retry_after: str) -> list[int]:
        calls: list[int] = []

        async def reviews(request: web.Request) -> web.Response:
            calls.append(1)
            if len(calls) == 1:
                return web.Response(status=503, headers={"Retry-After": retry_after})
            return web.json_response([])

        app = web.Application()
        app.router.add_get("/reviews/{id}", reviews)
        server = await aiohttp_server(app)
        self.url = str(server.make_url("")).rstrip("/")
        return calls

    @pytest.mark.parametrize(("retry_after", "calls", "degraded"), [("0", 2, {}), ("5", 1, None)])
    async def test_retry_after(
        self,
        make_bff: MakeBff,
        aiohttp_server: AiohttpServer,
        retry_after: str,
        calls: int,
        degraded: Any,
    ) -> None:
        seen = await self._flaky_reviews(aiohttp_server, retry_after)
        bff = await make_bff(BFF_REVIEWS_URL=self.url)
        async with bff.get("/product-details/P001") as resp:
            body = await resp.json()
        assert len(seen) == calls
        assert body["degraded"] == (
            degraded if degraded is not None else {"reviews": "unavailable"}
        )


class TestLoopLag:
    """A starved event loop is measured, and its timeouts are not blamed on the service."""

    async def test_a_blocked_loop_shows_as_lag_that_then_decays(self) -> None:
        lag = LoopLag(interval_s=0.01)
        lag.start()
        try:
            await asyncio.sleep(0.03)
            assert lag.lag < 0.05
            time.sleep(0.15)  # noqa: ASYNC251 - block the loop, as a saturated worker would
            await asyncio.sleep(0.015)
            assert lag.lag >= 0.03  # ~0.14 s late, halved per tick since
            await asyncio.sleep(0.3)
            assert lag.lag < 0.02
        finally:
            await lag.stop()

    async def test_a_timeout_while_our_loop_is_late_is_neutral(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_bff(
            # Far above the loop lag a busy test machine shows by itself.
            {"reviews.retry.max_attempts": 1, "loop_lag_neutral_s": 0.5},
            BFF_REVIEWS_TIMEOUT_MS=100,
            BFF_RATE_LIMIT_RATE=0,
        )
        await mocks.faults("reviews", latency_ms=1000)
        reviews = bff.server.app[CLIENTS]["reviews"]
        assert reviews.loop_lag is not None
        reviews.loop_lag.lag = 1000.0  # as if measured on a starved worker; decays slowly
        async with bff.get("/product-details/P001") as resp:
            assert (await resp.json())["degraded"] == {"reviews": "timeout"}
        assert reviews.breaker.counts[1] == 0
        reviews.loop_lag.lag = 0.0  # the same timeout on a healthy loop counts
        async with bff.get("/product-details/P001") as resp:
            assert (await resp.json())["degraded"] == {"reviews": "timeout"}
        assert reviews.breaker.counts[1] == 1
