"""Delayed hedging of the idempotent GETs: a call that has not answered after the service's
recent p95 gets one hedge, to another instance; the first good answer wins, the other request
is cancelled. Counted by the mocks' /__stats, shown in Server-Timing, bounded by a budget,
and never sent past what the breaker allows.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from bff_support import BffClient, MockAdmin, Mocks, counted, server_timing
from pytest_aiohttp import AiohttpClient, AiohttpServer
from settings_support import tuned

from bff.app import create_app
from bff.keys import CLIENTS
from bff.settings import BreakerSettings, Settings
from bff.settings.downstream import HedgeSettings
from mock_services import create_service_app

Build = Callable[..., Awaitable[BffClient]]
WARM_UP = 12  # answers before the p95 is known (8) and a little more


@pytest.fixture
async def second_reviews(aiohttp_server: AiohttpServer) -> Any:
    """A second reviews instance, and its admin API."""
    server = await aiohttp_server(create_service_app("reviews"))
    async with aiohttp.ClientSession() as session:
        yield MockAdmin(str(server.make_url("")).rstrip("/"), session)


@pytest.fixture
def build(aiohttp_client: AiohttpClient, mocks: Mocks) -> Build:
    """A BFF whose reviews client has these hedge/breaker settings (and these URLs)."""

    async def make(
        reviews_urls: str | None = None,
        hedge: HedgeSettings | None = None,
        breaker: BreakerSettings | None = None,
    ) -> BffClient:
        # Live calls are what hedging is about: the part cache would answer repeated ids.
        env = {**mocks.env(), "BFF_CACHE": "off"}
        if reviews_urls is not None:
            env["BFF_REVIEWS_URL"] = reviews_urls
        settings = Settings.from_env(env)
        reviews = settings.downstream("reviews")
        reviews = dataclasses.replace(
            reviews, hedge=hedge or reviews.hedge, breaker=breaker or reviews.breaker
        )
        return await aiohttp_client(create_app(tuned(settings, {"reviews": reviews})))

    return make


async def fetch(bff: BffClient, n: int) -> tuple[int, dict[str, dict[str, str]]]:
    async with bff.get(f"/product-details/P{n:05d}") as resp:
        await resp.read()
        return resp.status, server_timing(resp.headers["Server-Timing"])


async def recent(url: str, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
    async with session.get(f"{url}/__stats") as resp:
        entries: list[dict[str, Any]] = (await resp.json())["recent"]
        return entries


def skipped(reason: str) -> float:
    """Hedges of reviews due but not sent for `reason`, so far in this process."""
    return counted("bff_downstream_hedges_skipped_total", service="reviews", reason=reason)


async def warm_up(bff: BffClient) -> None:
    for n in range(WARM_UP):
        status, _ = await fetch(bff, n)
        assert status == 200


class TestHedge:
    async def test_a_straggler_is_hedged_to_the_other_instance_and_the_loser_cancelled(
        self, build: Build, mocks: Mocks, second_reviews: MockAdmin
    ) -> None:
        """Instance A turns slow (1 s): a call sent there gets a hedge to B after about the
        p95 of the fast answers; B's answer is used, A's request is cancelled. Both requests
        reached a service (each mock counts one), and Server-Timing says the hedge won."""
        for kind in ("product", "reviews", "inventory"):
            await mocks.faults(kind, latency_ms=10)
        await second_reviews.faults(latency_ms=10)
        slow_url, fast_url = mocks.url("reviews"), second_reviews.url
        bff = await build(reviews_urls=f"{slow_url},{fast_url}")
        await warm_up(bff)
        await mocks.faults("reviews", latency_ms=1000)
        hedged = None
        for n in range(100, 120):  # the first request is sent to A half of the time
            status, timing = await fetch(bff, n)
            assert status == 200
            assert timing["reviews"].get("desc") is None, timing  # never degraded
            if "reviews-hedge" in timing:
                hedged = n
                assert timing["reviews-hedge"]["desc"] == "won"
                break
        assert hedged is not None, "no call was sent to the slow instance"
        await asyncio.sleep(0.1)  # A hears that the BFF hung up
        path = f"/reviews/P{hedged:05d}"
        async with aiohttp.ClientSession() as session:
            on_slow = [e for e in await recent(slow_url, session) if e["path"] == path]
            on_fast = [e for e in await recent(fast_url, session) if e["path"] == path]
        assert [e["status"] for e in on_slow] == ["cancelled"]
        assert [e["status"] for e in on_fast] == [200]
        assert on_slow[0]["headers"]["x-request-id"] == on_fast[0]["headers"]["x-request-id"]
        first, hedge = (int(e["headers"]["x-request-timeout-ms"]) for e in (*on_slow, *on_fast))
        assert hedge <= first, "the hedge is allotted what is left, never more"

    async def test_a_fast_service_is_never_hedged(self, build: Build, mocks: Mocks) -> None:
        """At the reference latencies (no faults), nothing is hedged: every part is asked once."""
        bff = await build()
        # A few at a time, warm-up included: the BFF, the mocks and this client share one
        # loop here, so the latency the BFF sees depends on how many run at once.
        results: list[tuple[int, dict[str, dict[str, str]]]] = []
        for first in range(0, 140, 4):
            if first == 100:
                before = await mocks.requests("reviews")
                results = []
            results += await asyncio.gather(*(fetch(bff, n) for n in range(first, first + 4)))
        assert all(status == 200 for status, _ in results)
        assert not [t for _, t in results if any(k.endswith("-hedge") for k in t)]
        assert await mocks.requests("reviews") - before == 40


class TestHedgeLimits:
    async def test_no_hedge_once_the_budget_is_spent(self, build: Build, mocks: Mocks) -> None:
        """A budget of one hedge: the first straggler is hedged, the next one is not, for
        the budget's sake (counted by its reason)."""
        for kind in ("product", "reviews", "inventory"):
            await mocks.faults(kind, latency_ms=10)
        bff = await build(hedge=HedgeSettings(budget_ratio=0.0, budget_min=1))
        await warm_up(bff)
        await mocks.faults("reviews", latency_ms=10, slow_rate=1.0, slow_ms=100)
        before = await mocks.requests("reviews")
        # On a busy machine our loop can run late, and a late hedge timer sends nothing
        # (reason "loop_lag", no token spent): ask until the one hedge has gone.
        for asked in range(1, 11):
            _, timing = await fetch(bff, 100 + asked)
            if "reviews-hedge" in timing:
                break
        else:
            pytest.fail("no hedge in 10 stragglers")
        budget_refusals = skipped("budget")
        for n in range(200, 210):
            _, timing = await fetch(bff, n)
            assert "reviews-hedge" not in timing
            if skipped("budget") > budget_refusals:
                break
        else:
            pytest.fail("the budget refused no hedge in 10 stragglers")
        assert await mocks.requests("reviews") - before == asked + (n - 199) + 1  # 1 hedge
        assert bff.app is not None
        assert bff.app[CLIENTS]["reviews"].hedging.budget_counts[1] == 1

    async def test_no_hedge_when_the_breaker_refuses_it(self, build: Build, mocks: Mocks) -> None:
        """Half-open, the breaker lets one probe through: the probe is not hedged, since a
        hedge needs a permit of its own."""
        for kind in ("product", "reviews", "inventory"):
            await mocks.faults(kind, latency_ms=10)
        breaker = BreakerSettings(min_calls=4, failure_rate=0.5, reset_timeout_s=0.2)
        # A budget that never runs out: only the breaker may say no here.
        bff = await build(breaker=breaker, hedge=HedgeSettings(budget_ratio=1.0, budget_min=100))
        await warm_up(bff)
        await mocks.faults("reviews", latency_ms=10, error_rate=1.0)
        assert bff.app is not None
        reviews = bff.app[CLIENTS]["reviews"]
        for n in range(100, 110):
            await fetch(bff, n)
            if reviews.breaker.state == "open":
                break
        assert reviews.breaker.state == "open"
        await mocks.faults("reviews", latency_ms=150)
        await asyncio.sleep(0.25)  # past the reset timeout: the next call is the probe
        before = await mocks.requests("reviews")
        status, timing = await fetch(bff, 200)
        assert status == 200
        assert "reviews-hedge" not in timing
        assert await mocks.requests("reviews") - before == 1
        assert reviews.breaker.state == "closed"
