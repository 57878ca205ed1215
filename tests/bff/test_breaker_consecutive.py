"""The breaker's second rule: a run of consecutive failures opens it, whatever healthy calls
its window still holds (bff.resilience.breaker), and mixed faults a service survives do not.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

import aiohttp
import pytest
from bff_support import BffClient, MakeBff, Mocks
from process_support import TIMEOUT_S, Lines, running, url_in

from bff.keys import CLIENTS
from bff.resilience.breaker import CONSECUTIVE_FAILURES, ServiceBreaker
from bff.settings import BreakerSettings


def closed_after(outcomes: str, **settings: Any) -> ServiceBreaker:
    """A breaker fed `outcomes` in order: `o` success, `x` failure, `-` neutral (released)."""
    b = ServiceBreaker("svc", BreakerSettings(**settings))
    for outcome in outcomes:
        permit = b.admit()
        {"o": permit.success, "x": permit.failure, "-": permit.release}[outcome]()
    return b


class TestARunOfFailures:
    def test_opens_it_although_the_window_is_mostly_healthy(self) -> None:
        """100 good calls, then 20 failures: 17 % of the window failed, far below the rate."""
        assert CONSECUTIVE_FAILURES == 20
        b = closed_after("o" * 100 + "x" * 19)
        assert b.state == "closed"
        b.admit().failure()
        assert b.state == "open"

    def test_a_success_starts_the_run_again(self) -> None:
        assert closed_after("o" * 100 + "x" * 19 + "o" + "x" * 19).state == "closed"

    def test_a_neutral_outcome_neither_counts_nor_breaks_it(self) -> None:
        """A bad body for one id, a cancellation: the service said nothing either way."""
        assert closed_after("o" * 100 + "x" * 10 + "-" * 5 + "x" * 9).state == "closed"
        assert closed_after("o" * 100 + "x" * 10 + "-" * 5 + "x" * 10).state == "open"

    def test_is_never_shorter_than_min_calls(self) -> None:
        """`min_calls` of 1000: the operator's breaker that does not judge on fewer calls."""
        assert closed_after("x" * 999, min_calls=1000).state == "closed"
        assert closed_after("x" * 1000, min_calls=1000).state == "open"

    def test_each_closed_spell_starts_a_run_of_its_own(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        now = [500.0]
        monkeypatch.setattr("time.monotonic", lambda: now[0])
        b = closed_after("o" * 100 + "x" * 20)
        assert b.state == "open"
        now[0] += b.settings.reset_timeout_s
        b.admit().success()  # the probe
        assert b.state == "closed"
        for _ in range(CONSECUTIVE_FAILURES - 1):
            b.admit().failure()
        assert b.state == "closed"


def transitions(lines: Lines) -> list[dict[str, Any]]:
    """The reviews breaker's transitions the workers logged so far (JSON lines)."""
    lines.read()
    logged = [json.loads(line) for line in lines.seen if line.startswith("{")]
    return [e for e in logged if e["event"] == "breaker_transition" and e["service"] == "reviews"]


async def reviews_reason(session: aiohttp.ClientSession, url: str) -> str | None:
    async with session.get(url) as resp:
        assert resp.status == 200
        reason: str | None = (await resp.json())["degraded"].get("reviews")
        return reason


@pytest.mark.slow
async def test_a_service_that_goes_down_is_cut_off_within_20_calls_per_worker(
    mocks: Mocks,
) -> None:
    """Two workers, default settings, 150 requests with 10 % transient errors on reviews, then
    reviews fails every call: each worker's breaker opens after at most 20 reviews calls.
    (The rate alone let 135 calls through in 100 requests and stayed closed.)"""
    for kind in ("product", "inventory"):
        await mocks.faults(kind, latency_ms=5)
    await mocks.faults("reviews", latency_ms=5, error_rate=0.1, seed=11)
    env = {**mocks.env(), "BFF_WORKERS": "2", "BFF_LOG_FORMAT": "json"}
    async with running(["-m", "bff", "--port", "0"], env) as (_, lines):
        url = url_in(await lines.next_matching("bff listening on"))
        # A new connection per request: SO_REUSEPORT spreads connections over the workers.
        connector = aiohttp.TCPConnector(force_close=True)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            warm = [
                await reviews_reason(session, f"{url}/product-details/W{i}") for i in range(150)
            ]
            assert "circuit_open" not in warm
            assert transitions(lines) == []
            await mocks.faults("reviews", latency_ms=5, error_rate=1)
            before = await mocks.requests("reviews")
            for i in range(200):
                await reviews_reason(session, f"{url}/product-details/D{i}")
                opened = [t for t in transitions(lines) if t["old_state"] == "closed"]
                if len(opened) == 2:
                    break
            calls = await mocks.requests("reviews") - before
            probes = sum(1 for t in transitions(lines) if t["old_state"] == "half-open")
    assert len(opened) == 2, "both workers' breakers opened"
    assert calls - probes <= 2 * CONSECUTIVE_FAILURES


CATALOGUE = 200  # ids a shop's traffic keeps asking for, as in a brownout on a live site


async def shoppers(bff: BffClient, count: int, concurrency: int) -> list[tuple[int, Any]]:
    """`count` requests for ids drawn from the catalogue (seeded), `concurrency` at a time."""
    draw = random.Random(5)
    ids = [f"P{draw.randrange(CATALOGUE)}" for _ in range(count)]
    gate = asyncio.Semaphore(concurrency)

    async def one(product_id: str) -> tuple[int, Any]:
        async with gate, bff.get(f"/product-details/{product_id}") as resp:
            return resp.status, await resp.json()

    return list(await asyncio.gather(*(one(i) for i in ids)))


@pytest.mark.slow
async def test_a_brownout_of_35_percent_mixed_faults_opens_no_breaker(
    make_bff: MakeBff, mocks: Mocks
) -> None:
    """Reviews and inventory each: 10 % 503, 5 % resets, 5 % malformed and 5 % wrong-schema
    bodies, 16 % stalled 300 ms (independent draws: 35 % of calls hit), 32 requests at a time,
    default settings (the part cache on). A failing call is 30 % likely: a run of 20 in a row
    is a chance of 0.3^20, and the rate stays far below 80 %. Retries, hedges and stored copies
    save most answers; the breakers must stay out of it."""
    bff = await make_bff(BFF_RATE_LIMIT_RATE=0)
    brownout = {
        "error_rate": 0.10,
        "reset_rate": 0.05,
        "malformed_rate": 0.05,
        "wrong_schema_rate": 0.05,
        "slow_rate": 0.16,
        "slow_ms": 300,
    }
    for seed, kind in enumerate(("reviews", "inventory")):
        await mocks.faults(kind, seed=seed, **brownout)
    results = await shoppers(bff, 600, concurrency=32)
    complete = sum(1 for status, body in results if status == 200 and not body["degraded"])
    reasons = Counter(
        reason for status, body in results if status == 200 for reason in body["degraded"].values()
    )
    print(f"complete {complete / len(results):.1%}, degraded {dict(reasons)}")
    assert {status for status, _ in results} == {200}
    # The breakers were put to the test: hundreds of calls, about a third of them failing.
    assert await mocks.requests("reviews") >= 200
    assert await mocks.requests("inventory") >= 200
    assert reasons["circuit_open"] == 0
    assert all(c.breaker.state == "closed" for c in bff.server.app[CLIENTS].values())
    assert complete >= 0.70 * len(results)
