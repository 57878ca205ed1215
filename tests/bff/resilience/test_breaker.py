"""The circuit breaker of each service, per worker (bff.resilience.breaker): what a user is
promised is that a failing service stops being called, and that a healthy one never is cut off.

- It opens on the failure rate over a sliding window, once the window holds `min_calls`
  calls, or on a run of consecutive failures, whatever healthy calls the window still holds.
  Mixed faults a service survives (a brownout) open nothing.
- While open it refuses calls, and tells the caller the seconds until its probe may go out
  (`Retry-After`): too long and clients stay away from a service that is back, too short and
  they come back to another 503.
- Half-open, only the one probe decides: a call admitted while the breaker was still closed
  and answering late neither closes nor re-opens it, nor lets a second probe out (one slow
  call from before an outage must not send a burst back to a service that is still down).
- A permit counts once: the first report (success, failure or release) is the one that
  counts, so a `finally: permit.release()` after a reported failure cannot count the call
  twice and open the breaker at half the promised rate.
- Every transition reaches the hook (log line, gauge, span event) with the service and both
  states; a cancellation by the BFF or a client's short budget is not the service's failure.

Unit tests on a clock the test moves, then whole BFFs on the real mock services (counts from
their `/__stats`), then `python -m bff` with two workers."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from typing import Any, ClassVar

import aiohttp
import pytest
from bff_support import BffClient, MakeBff, Mocks, clients_of, degraded, get_many
from process_support import TIMEOUT_S, Lines, running, url_in

from bff.errors import CircuitOpen
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


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [5000.0]
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


def closed(min_calls: int = 2) -> ServiceBreaker:
    return ServiceBreaker("svc", BreakerSettings(min_calls=min_calls, reset_timeout_s=60))


class TestFirstReportCounts:
    """After the first report, every later report on the same permit is ignored."""

    def test_a_failure_reported_twice_is_one_failure(self) -> None:
        b = closed()
        permit = b.admit()
        permit.failure()
        permit.failure()
        assert (b.state, b.counts) == ("closed", (0, 1))

    @pytest.mark.parametrize("later", ["success", "failure", "release"])
    def test_nothing_after_the_first(self, later: str) -> None:
        b = closed(min_calls=100)
        permit = b.admit()
        permit.success()
        getattr(permit, later)()
        getattr(permit, later)()
        assert b.counts == (1, 0)

    def test_a_released_permit_reports_nothing_later(self) -> None:
        b = closed()
        permit = b.admit()
        permit.release()
        permit.failure()
        assert b.counts == (0, 0)


def breaker(**settings: Any) -> ServiceBreaker:
    return ServiceBreaker("svc", BreakerSettings(**settings))


class TestRateBreaker:
    """The breaker opens on the failure rate over a sliding window, after a minimum of calls."""

    def test_half_the_calls_failing_keeps_it_closed(self) -> None:
        b = breaker()  # the defaults: 80 % of at least 20 calls in 10 s
        for i in range(1000):
            permit = b.admit()
            permit.failure() if i % 2 else permit.success()
        assert b.state == "closed"

    def test_opens_at_the_rate_once_the_minimum_is_in(self) -> None:
        b = breaker(min_calls=10, failure_rate=0.8)
        for _ in range(9):
            b.admit().failure()
        assert b.state == "closed"  # 9 calls: below the minimum
        b.admit().failure()
        assert b.state == "open"
        with pytest.raises(CircuitOpen):
            b.admit()

    def test_successes_dilute_the_rate(self) -> None:
        b = breaker(min_calls=10, failure_rate=0.8)
        for _ in range(3):
            b.admit().success()
        for _ in range(11):
            b.admit().failure()
        assert b.state == "closed"  # 11 of 14 = 79 %
        b.admit().failure()
        assert b.state == "open"  # 12 of 15 = 80 %

    def test_old_outcomes_leave_the_window(self, monkeypatch: pytest.MonkeyPatch) -> None:
        now = [1000.0]
        monkeypatch.setattr(time, "monotonic", lambda: now[0])
        b = breaker(min_calls=4, failure_rate=0.5, window_s=5)
        for _ in range(3):
            b.admit().failure()
        now[0] += 5
        b.admit().failure()
        assert (b.state, b.counts) == ("closed", (0, 1))

    def test_the_probe_decides_and_a_released_probe_frees_the_slot(self) -> None:
        b = breaker(min_calls=1, reset_timeout_s=0.01)
        b.admit().failure()
        time.sleep(0.02)
        probe = b.admit()
        probe.release()  # neutral (a bad body, a cancellation): still half-open, not stuck
        assert b.state == "half-open"
        b.admit().failure()
        assert b.state == "open"
        time.sleep(0.02)
        b.admit().success()
        assert (b.state, b.counts) == ("closed", (0, 0))  # a closed spell starts afresh


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


class TestCircuitBreaker:
    """After `min_calls` failures in a row (a 100 % failure rate) no call is made; after the
    reset time one probe decides."""

    FIELDS: ClassVar[dict[str, float]] = {
        "reviews.breaker.min_calls": 3,
        "reviews.breaker.reset_timeout_s": 0.5,
        "reviews.retry.max_attempts": 1,
    }

    async def _open(self, bff: BffClient, mocks: Mocks) -> None:
        await mocks.faults("reviews", latency_ms=1, error_rate=1)
        for _ in range(3):
            async with bff.get("/product-details/P001") as resp:
                assert (await resp.json())["degraded"] == {"reviews": "unavailable"}
        assert clients_of(bff)["reviews"].breaker.state == "open"

    async def test_open_breaker_makes_no_calls(
        self, make_uncached_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_uncached_bff(self.FIELDS)
        await self._open(bff, mocks)
        before = await mocks.requests("reviews")
        results = await get_many(bff, 20)
        assert degraded(results) == Counter({"circuit_open": 20})
        assert await mocks.requests("reviews") == before  # flat: no network call at all

    async def test_exactly_one_probe_after_the_reset_time(
        self, make_uncached_bff: MakeBff, mocks: Mocks
    ) -> None:
        # A slow probe (800 ms) keeps the half-open window wide, even on a busy machine.
        bff = await make_uncached_bff(
            self.FIELDS, BFF_DEADLINE_MS=2000, BFF_REVIEWS_TIMEOUT_MS=1500
        )
        await self._open(bff, mocks)
        await mocks.faults("reviews", latency_ms=800)  # healthy again, and slow
        await asyncio.sleep(0.6)
        before = await mocks.requests("reviews")
        results = await get_many(bff, 20, concurrency=20)
        assert await mocks.requests("reviews") == before + 1
        assert degraded(results) == Counter({"circuit_open": 19})
        # The good probe closed the breaker: calls flow again.
        assert clients_of(bff)["reviews"].breaker.state == "closed"
        async with bff.get("/product-details/P001") as resp:
            assert (await resp.json())["degraded"] == {}

    async def test_a_bad_probe_reopens_the_breaker(
        self, make_uncached_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_uncached_bff(self.FIELDS)
        await self._open(bff, mocks)
        await asyncio.sleep(0.6)
        before = await mocks.requests("reviews")
        results = await get_many(bff, 10, concurrency=10)
        assert await mocks.requests("reviews") == before + 1
        assert degraded(results) == Counter({"circuit_open": 9, "unavailable": 1})
        assert clients_of(bff)["reviews"].breaker.state == "open"

    async def test_product_breaker_open_is_503_with_retry_after(
        self, make_uncached_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_uncached_bff(
            {
                "product.breaker.min_calls": 2,
                "product.breaker.reset_timeout_s": 30,
                "product.retry.max_attempts": 1,
            }
        )
        await mocks.faults("product", latency_ms=1, error_rate=1)
        for _ in range(2):
            async with bff.get("/product-details/P001") as resp:
                assert resp.status == 502
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 503
            assert 25 <= int(resp.headers["Retry-After"]) <= 30
            body = await resp.json(content_type=None)
        assert body["detail"] == "product: circuit_open"

    async def test_a_cancellation_by_the_bff_is_not_a_failure(
        self, make_uncached_bff: MakeBff, mocks: Mocks
    ) -> None:
        """The product failed, so the BFF cancelled reviews: that says nothing about reviews."""
        bff = await make_uncached_bff(
            {"reviews.breaker.min_calls": 2, "product.retry.max_attempts": 1}
        )
        await mocks.faults("product", latency_ms=1, error_rate=1, error_status=500)
        await mocks.faults("reviews", latency_ms=2000)
        for _ in range(4):
            async with bff.get("/product-details/P001") as resp:
                assert resp.status == 502
        breaker = clients_of(bff)["reviews"].breaker
        assert (breaker.state, breaker.counts) == ("closed", (0, 0))

    async def test_a_cancelled_probe_neither_closes_nor_blocks_the_breaker(
        self, make_uncached_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_uncached_bff({**self.FIELDS, "product.retry.max_attempts": 1})
        await self._open(bff, mocks)
        await asyncio.sleep(0.6)
        await mocks.faults("reviews", latency_ms=2000)
        await mocks.faults("product", latency_ms=20, error_rate=1, error_status=500)
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 502  # the reviews probe was cancelled mid-flight
        await asyncio.sleep(0.05)
        breaker = clients_of(bff)["reviews"].breaker
        assert breaker.state == "half-open"  # not closed by a cancellation
        # ... and the probe slot is free again: the next request probes.
        await mocks.faults("product")
        await mocks.faults("reviews", latency_ms=1)
        async with bff.get("/product-details/P001") as resp:
            assert (await resp.json())["degraded"] == {}
        assert breaker.state == "closed"

    async def test_a_short_client_budget_does_not_count_against_the_service(
        self, make_uncached_bff: MakeBff, mocks: Mocks
    ) -> None:
        """Otherwise any client could trip our breakers with `X-Request-Timeout-Ms: 1`."""
        bff = await make_uncached_bff({"reviews.breaker.min_calls": 2})
        await mocks.faults("reviews", latency_ms=300)
        for _ in range(5):
            async with bff.get(
                "/product-details/P001", headers={"X-Request-Timeout-Ms": "80"}
            ) as resp:
                assert (await resp.json())["degraded"] == {"reviews": "timeout"}
        breaker = clients_of(bff)["reviews"].breaker
        assert (breaker.state, breaker.counts) == ("closed", (0, 0))

    async def test_a_service_past_the_budget_we_sent_answers_504_and_that_counts(
        self, make_uncached_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_uncached_bff(
            BFF_REVIEWS_TIMEOUT_MS=150,
            fields={
                # A wide margin: the mock's 504 must beat our own timer even on a busy machine.
                "propagation_margin_s": 0.06,
                # A busy test machine must not make the 504 neutral.
                "loop_lag_neutral_s": 0.5,
                "reviews.retry.max_attempts": 1,
                "reviews.breaker.min_calls": 50,
            },
        )
        await mocks.faults("reviews", latency_ms=1000)
        async with bff.get("/product-details/P001") as resp:
            assert (await resp.json())["degraded"] == {"reviews": "timeout"}
        stats = await mocks.stats("reviews")
        assert stats["budget_exceeded"] == 1  # the mock stopped at the budget: 90 ms
        assert 60 <= int(stats["recent"][-1]["headers"]["x-request-timeout-ms"]) <= 90
        assert clients_of(bff)["reviews"].breaker.counts[1] == 1
