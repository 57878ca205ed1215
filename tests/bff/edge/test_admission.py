"""Admission: a worker refuses work only when it cannot keep up, and then only cache misses
that waited too long, early and cheaply; past BFF_MAX_IN_FLIGHT (misses at work or waiting)
it answers 503 at once, probes exempt; and the deadline counts the time a request waited
inside the BFF, from when its bytes arrived.

The rule, driven with explicit times (the worker's own queue delays, as the middleware and
the loop-lag probe report them), then the whole BFF under a load its loop cannot serve. The
tests of the real runner (the protocol class that stamps the receive time) in the test's
loop make the worker busy right after a request's bytes arrived: a synchronous sleep
scheduled from `data_received`, before the loop gets to the handler, as a saturated worker
would be."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from bff_support import KINDS, AdminFor, MakeBff, Mocks, counted, total_ms
from runner_support import Serve, busy_after_receipt

from bff import product_details
from bff.edge.admission import (
    GAIN,
    GROW,
    INITIAL_LIMIT,
    INTERVAL_S,
    MIN_LIMIT,
    RESERVE_SHARES,
    SHRINK,
    TARGET_SHARE,
    TIMES_KEPT,
    Admission,
)
from bff.errors import ServiceOverloaded
from bff.keys import ADMISSION

TARGET = 0.05
RESERVE = 0.1  # a fifth of the 500 ms deadline: the reserve before any miss was timed


def admission(**kw: Any) -> Admission:
    return Admission(deadline_s=0.5, max_in_flight=kw.pop("max_in_flight", 1000), **kw)


def feed(a: Admission, delays: list[float], start: float, step: float) -> float:
    """One sample every `step` seconds from `start`; returns the time after the last."""
    now = start
    for delay in delays:
        a.observe(delay, now)
        now += step
    return now


def finish(a: Admission, count: int, took: float) -> None:
    """`count` misses at work end now, each having taken `took` seconds."""
    for _ in range(count):
        a.in_flight += 1
        a.done(time.perf_counter() - took)


def deliver(
    a: Admission,
    per_interval: int,
    took: float,
    intervals: int,
    start: float,
    delay: float = 0.001,
) -> float:
    """`per_interval` misses of `took` seconds finish in each of `intervals` intervals, the
    worker's delay `delay` all along (under the target: the loop keeps up); returns the time
    of the last interval's end."""
    now = start
    a.observe(delay, now)  # opens the first interval
    for _ in range(intervals):
        finish(a, per_interval, took)
        now += INTERVAL_S * 1.001
        a.observe(delay, now)  # its end: one decision
    return now


def deadline(left: float) -> float:
    return asyncio.get_running_loop().time() + left


async def enter(
    a: Admission, left: float = 1.0, cheap: bool = False, client: Any = None
) -> float | None:
    return await a.enter(deadline(left), cheap, client)


async def one_slot_taken(**kw: Any) -> Admission:
    """A worker whose limit is one miss, and that one at work: the next miss has to wait."""
    a = admission(**kw)
    a.limit = 1
    await enter(a)
    return a


class Client:
    """The connection a miss's answer goes out on, as admission sees it."""

    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


class TestTheLimit:
    """How many misses work at once. A loop that runs late (CoDel: a whole interval of
    delays over the target) halves it; a loop that keeps up grows it by a tenth at each
    interval, up to what the worker delivers, sized as BBR sizes a window (twice the best
    rate of finished misses times the shortest time a miss took), never under the initial
    64 nor over the ceiling."""

    def test_the_figures(self) -> None:
        assert (TARGET_SHARE, RESERVE_SHARES, INTERVAL_S) == (0.1, (0.2, 0.5), 0.1)
        assert (INITIAL_LIMIT, MIN_LIMIT, SHRINK, GROW, GAIN) == (64, 4, 0.5, 0.1, 2.0)
        assert TIMES_KEPT == 128
        a = admission()
        assert a.target_s == pytest.approx(TARGET)
        assert a.reserve_s == pytest.approx(RESERVE)
        assert a.limit == 64
        assert Admission(deadline_s=0.2, max_in_flight=10).limit == 10

    def test_rate_times_the_shortest_time_twice(self) -> None:
        """500 misses a second, 100 ms each: 50 at work on average; room for 100, reached
        a tenth at a time once the rate is known (a second of intervals)."""
        a = admission()
        deliver(a, per_interval=50, took=0.1, intervals=10, start=10.0)
        assert a.limit == pytest.approx(64 * 1.1)
        deliver(a, per_interval=50, took=0.1, intervals=10, start=20.0)
        assert a.limit == pytest.approx(2 * 500 * 0.1, rel=0.02)

    def test_a_slow_downstream_does_not_shrink_it(self) -> None:
        """The same worker whose misses take 400 ms: a quarter of the rate with the same
        misses at once; once its shortest miss is that slow too, the limit is unchanged."""
        fast, slow = admission(), admission()
        deliver(fast, per_interval=50, took=0.1, intervals=20, start=10.0)
        deliver(slow, per_interval=12, took=0.4, intervals=20, start=10.0)
        assert slow.limit == pytest.approx(fast.limit, rel=0.05)

    def test_it_follows_what_the_worker_delivers_down_to_the_initial_limit(self) -> None:
        a = admission()
        deliver(a, per_interval=50, took=0.1, intervals=20, start=10.0)
        assert a.limit == pytest.approx(100, rel=0.02)
        deliver(a, per_interval=2, took=0.1, intervals=60, start=20.0)  # the best rate aged
        assert a.limit == INITIAL_LIMIT

    def test_never_under_the_initial_limit_nor_over_the_ceiling(self) -> None:
        small = admission()
        deliver(small, per_interval=2, took=0.01, intervals=20, start=10.0)
        assert small.limit == INITIAL_LIMIT
        capped = admission(max_in_flight=80)
        deliver(capped, per_interval=100, took=0.1, intervals=20, start=10.0)
        assert capped.limit == 80

    def test_a_standing_delay_halves_it_and_it_grows_back_once_the_loop_keeps_up(self) -> None:
        a = admission()
        now = deliver(a, per_interval=50, took=0.1, intervals=1, start=10.0, delay=0.06)
        assert (a.congested, a.limit) == (True, 32)
        now = deliver(a, per_interval=50, took=0.1, intervals=11, start=now, delay=0.06)
        assert (a.congested, a.limit) == (True, MIN_LIMIT), "a late loop gets less work"
        now = deliver(a, per_interval=50, took=0.1, intervals=1, start=now)
        assert (a.congested, a.limit) == (False, MIN_LIMIT + 1)
        deliver(a, per_interval=50, took=0.1, intervals=60, start=now)
        assert a.limit == pytest.approx(100, rel=0.02)

    def test_a_burst_shorter_than_an_interval_is_no_congestion(self) -> None:
        a = admission()
        now = feed(a, [0.2] * 5, start=10.0, step=0.01)  # 50 ms of long waits
        feed(a, [0.001] * 10, start=now, step=0.01)  # then it is worked off
        assert not a.congested

    def test_one_request_in_time_ends_the_congestion(self) -> None:
        a = admission()
        now = feed(a, [0.06] * 12, start=10.0, step=0.01)
        assert a.congested
        feed(a, [0.06, 0.01] + [0.06] * 9, start=now, step=0.01)
        assert not a.congested

    def test_the_first_sample_opens_an_interval_and_decides_nothing(self) -> None:
        a = admission()
        a.observe(10.0, 5.0)
        assert (a.congested, a.limit) == (False, 64)

    def test_cheap_work_is_not_timed(self) -> None:
        """A request that only joined calls already running says nothing of the work."""
        a = admission()
        for _ in range(12):
            for _ in range(50):
                a.in_flight += 1
                a.done(None)
        deliver(a, per_interval=0, took=0.0, intervals=12, start=10.0)
        assert (a.limit, a.reserve_s) == (64, pytest.approx(RESERVE))

    def test_off_it_is_a_fixed_limit_at_the_ceiling(self) -> None:
        a = admission(enabled=False, max_in_flight=200)
        deliver(a, per_interval=50, took=0.1, intervals=12, start=10.0)
        feed(a, [0.3] * 50, start=100.0, step=0.01)
        assert (a.congested, a.limit) == (False, 200)


class TestTheReserve:
    """What a waiting miss needs left of its deadline to start: the 90th percentile of the
    last 128 misses' times, between a fifth and a half of the deadline."""

    @pytest.mark.parametrize(
        ("took", "reserve"), [(0.2, 0.2), (0.01, 0.1), (0.4, 0.25)], ids=["measured", "low", "high"]
    )
    def test_the_misses_time_within_its_bounds(self, took: float, reserve: float) -> None:
        a = admission()
        finish(a, 200, took)
        feed(a, [0.001] * 12, start=10.0, step=0.01)
        assert a.reserve_s == pytest.approx(reserve, abs=0.005)

    def test_the_90th_percentile_of_the_last_128(self) -> None:
        a = admission()
        finish(a, 100, 0.4)  # pushed out by the 128 that follow
        finish(a, 115, 0.12)
        finish(a, 13, 0.2)  # 13 of 128: over a tenth, so they are the 90th percentile
        feed(a, [0.001] * 12, start=10.0, step=0.01)
        assert a.reserve_s == pytest.approx(0.2, abs=0.005)


class TestWaiting:
    """A miss over the limit waits its turn, first come first served, while its deadline
    holds the reserve; then it is refused, and the refusal goes out at the end of its
    deadline (less the target), not at once."""

    async def test_first_come_first_served(self) -> None:
        a = await one_slot_taken(max_in_flight=100)
        order: list[int] = []

        async def waiter(n: int) -> None:
            await enter(a)
            order.append(n)

        waiters = [asyncio.create_task(waiter(n)) for n in range(3)]
        await asyncio.sleep(0)
        for _ in range(3):
            a.done()
            await asyncio.sleep(0)
        await asyncio.gather(*waiters)
        assert order == [0, 1, 2]

    async def test_refused_once_only_the_reserve_is_left_answered_at_the_end(self) -> None:
        a = await one_slot_taken()
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiter = asyncio.create_task(enter(a, left=0.2))  # may wait 100 ms
        await asyncio.sleep(0.12)
        assert (a.waiting, a.refused["overloaded"]) == (0, 1), "decided at 100 ms"
        with pytest.raises(ServiceOverloaded) as refused:
            await waiter
        answered = loop.time() - started
        assert 0.14 <= answered < 0.19, "answered 50 ms before its deadline"
        assert refused.value.headers == {"Retry-After": "1"}
        assert refused.value.detail == "this worker is busy; the deadline leaves no time to wait"
        assert a.in_flight == 1

    async def test_no_time_to_wait_is_decided_at_once(self) -> None:
        a = await one_slot_taken()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ServiceOverloaded):
            await enter(a, left=RESERVE)
        assert a.waiting == 0
        assert 0.04 <= loop.time() - started < 0.09

    async def test_a_client_that_went_away_is_answered_at_once(self) -> None:
        a = await one_slot_taken()
        gone = Client()
        gone.closing = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ServiceOverloaded):
            await enter(a, left=RESERVE, client=gone)
        assert loop.time() - started < 0.02

    async def test_the_reserve_measured_is_the_one_a_waiter_keeps(self) -> None:
        a = admission()
        finish(a, 200, 0.2)
        feed(a, [0.001] * 12, start=10.0, step=0.01)
        a.limit = 0
        with pytest.raises(ServiceOverloaded):
            await enter(a, left=0.2)  # 200 ms: no more than its work takes
        assert a.waiting == 0

    async def test_a_waiter_whose_client_went_away_is_dropped_at_its_turn(self) -> None:
        a = await one_slot_taken()
        leaving, staying = Client(), Client()
        dropped = asyncio.create_task(enter(a, client=leaving))
        kept = asyncio.create_task(enter(a, client=staying))
        await asyncio.sleep(0)
        leaving.closing = True
        a.done()
        assert await kept is not None
        with pytest.raises(asyncio.CancelledError):
            await dropped  # its handler ends as the client's leaving (499)
        assert (a.in_flight, a.waiting, a.gone) == (1, 0, 1)

    async def test_a_waiter_that_leaves_gives_its_turn_on(self) -> None:
        a = await one_slot_taken()
        leaving = asyncio.create_task(enter(a))
        staying = asyncio.create_task(enter(a))
        await asyncio.sleep(0)
        leaving.cancel()
        await asyncio.sleep(0)
        assert a.waiting == 1
        a.done()
        await staying
        assert (a.in_flight, a.waiting) == (1, 0)

    async def test_cheap_work_never_waits_and_is_not_timed(self) -> None:
        a = admission()
        a.limit = 1
        assert await enter(a) is not None
        assert await enter(a, cheap=True) is None  # joins calls already running
        assert a.in_flight == 2


class TestTheBoundsThatAlwaysHold:
    async def test_a_deadline_spent_before_the_handler_is_refused(self) -> None:
        a = admission()
        with pytest.raises(ServiceOverloaded) as refused:
            await enter(a, left=0.0, cheap=True)
        assert refused.value.detail == "the request's deadline passed while it was queued"
        assert a.refused["queued"] == 1

    async def test_the_in_flight_ceiling_counts_the_waiting_too(self) -> None:
        a = await one_slot_taken(max_in_flight=2)
        waiter = asyncio.create_task(enter(a))
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ServiceOverloaded) as refused:
            await enter(a)
        assert loop.time() - started < 0.02, "answered at once"
        assert refused.value.detail == "this worker is at its in-flight ceiling"
        assert a.refused["in_flight"] == 1
        a.done()
        await waiter


class TestWhatIsNeverRefused:
    """Cache hits are answered whatever the worker's state: they cost what a refusal would."""

    async def test_a_shedding_worker_answers_what_it_has(self, make_bff: MakeBff) -> None:
        bff = await make_bff()
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
        assert bff.app is not None
        a = bff.app[ADMISSION]
        a.limit = 0  # a worker that takes on no more work
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200  # all at hand
        async with bff.get(
            "/product-details/P002", headers={"X-Request-Timeout-Ms": "100"}
        ) as resp:
            assert resp.status == 503  # a miss, and no time to wait
            body = await resp.json()
        assert body["detail"] == "this worker is busy; the deadline leaves no time to wait"


class TestUnderLoad:
    """The real runner in the test's loop; each miss that starts its work costs the loop
    `cost_s` of synchronous work (a worker whose CPU is the bottleneck), 100 clients ask
    10 times each, at once, and ask again as soon as they are answered."""

    async def burst(
        self, serve: Serve, monkeypatch: pytest.MonkeyPatch, cost_s: float, clients: int = 100
    ) -> tuple[list[float], list[float], list[int]]:
        url = await serve(BFF_DEADLINE_MS="500")
        original = product_details._wait

        async def costly(*args: Any) -> Any:
            time.sleep(cost_s)  # noqa: ASYNC251 - the point: CPU work that holds the loop
            return await original(*args)

        monkeypatch.setattr(product_details, "_wait", costly)  # once admitted
        served: list[float] = []
        refused: list[float] = []
        other: list[int] = []

        async def client(session: aiohttp.ClientSession, n: int) -> None:
            for i in range(10):
                async with session.get(f"{url}/product-details/P{n:03d}{i}") as resp:
                    await resp.read()
                if resp.status == 200:
                    served.append(total_ms(resp))
                elif resp.status == 503:
                    assert resp.headers["Retry-After"] == "1"
                    refused.append(total_ms(resp))
                else:
                    other.append(resp.status)

        connector = aiohttp.TCPConnector(limit=clients)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(*(client(session, n) for n in range(clients)))
        assert len(served) + len(refused) + len(other) == clients * 10
        return served, refused, other

    async def test_a_load_the_worker_can_serve_in_time_is_served(
        self, serve: Serve, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """2 ms a miss, 50 at once: ~100 ms a round, well within the deadline. Nothing is
        refused; the misses over the limit wait their turn instead."""
        served, refused, other = await self.burst(serve, monkeypatch, 0.002, clients=50)
        assert (len(refused), other) == (0, [])
        assert sorted(served)[int(len(served) * 0.95)] <= 500 + 100

    async def test_a_load_it_cannot_serve_in_time_is_refused_by_the_deadline(
        self, serve: Serve, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """8 ms a miss, 100 at once: 800 ms a round, past the deadline. The misses that
        cannot start in time are refused once only the reserve is left, and answered at the
        end of their deadline; the served keep the deadline; every answer goes out by it."""
        overloaded_before = counted("bff_edge_rejections_total", reason="overloaded")
        served, refused, other = await self.burst(serve, monkeypatch, 0.008)
        assert refused, "a load that cannot be served in time is refused"
        assert counted("bff_edge_rejections_total", reason="overloaded") > overloaded_before
        assert len(served) >= 200, ("and what can be served is", len(refused), other[:5])
        everything = sorted([*served, *refused])
        # The test client and the mocks share this busy loop: the 95th percentile keeps the
        # deadline, and a refusal goes out 50 ms before it (the loop's target).
        assert everything[int(len(everything) * 0.95)] <= 500 + 100
        assert 450 - 10 <= sorted(refused)[len(refused) // 2] <= 500 + 50
        assert set(other) <= {504}


class TestALoopThatRunsLate:
    async def test_takes_on_less_while_it_runs_late_and_is_not_congested_once_it_catches_up(
        self, serve: Serve, app_of: Any
    ) -> None:
        """Something holds the worker's loop for 80 ms at every turn (the target is 50 ms):
        by their latency alone the requests look like any others; the loop's own delays say
        the worker is congested, and its limit shrinks. Once that stops, it is not."""
        url = await serve()
        admission = app_of(url)[ADMISSION]
        loop = asyncio.get_running_loop()
        hogging = True

        def hog() -> None:
            if hogging:
                time.sleep(0.08)
                loop.call_later(0.001, hog)

        loop.call_soon(hog)
        async with aiohttp.ClientSession() as session:
            for n in range(12):
                async with session.get(f"{url}/product-details/Q{n:03d}") as resp:
                    assert resp.status == 200  # one at a time: nothing waits
            assert admission.congested
            assert admission.limit < 64
            hogging = False
            await asyncio.sleep(0.3)  # a few quiet intervals
            async with session.get(f"{url}/product-details/R000") as resp:
                assert resp.status == 200
            assert not admission.congested

    async def test_a_loop_that_keeps_up_is_not_congested(
        self, serve: Serve, app_of: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each request waits 20 ms in the worker's queue: under the target."""
        url = await serve()
        busy_after_receipt(monkeypatch, 0.02)
        async with aiohttp.ClientSession() as session:
            for n in range(10):
                async with session.get(f"{url}/product-details/R{n:03d}") as resp:
                    assert resp.status == 200
        assert not app_of(url)[ADMISSION].congested
        assert app_of(url)[ADMISSION].limit == 64


CAP = 2


class TestShedding:
    async def test_request_past_the_cap_gets_503_at_once(
        self, make_bff: MakeBff, mocks: Mocks, admin_for: AdminFor
    ) -> None:
        await mocks.faults("product", latency_ms=200)
        client = await make_bff(BFF_MAX_IN_FLIGHT=str(CAP))
        admission = client.app[ADMISSION]  # type: ignore[index]

        async def fetch() -> int:
            async with client.get("/product-details/P001") as resp:
                await resp.read()
                return resp.status

        slow = [asyncio.create_task(fetch()) for _ in range(CAP)]
        for _ in range(100):  # bounded: up to 1 s for both to be in flight
            if admission.in_flight == CAP:
                break
            await asyncio.sleep(0.01)
        assert admission.in_flight == CAP

        shed_before = counted("bff_edge_rejections_total", reason="in_flight")
        started = time.perf_counter()
        async with client.get("/product-details/P002") as resp:
            elapsed = time.perf_counter() - started
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "1"
            body = await resp.json(content_type=None)
        assert body["type"] == "/problems/overloaded"
        assert body["detail"] == "this worker is at its in-flight ceiling"
        assert counted("bff_edge_rejections_total", reason="in_flight") == shed_before + 1
        assert elapsed < 0.1, "shedding must not wait"

        admin = await admin_for(client)
        async with admin.get("/readyz") as probe:
            assert probe.status == 200, "the admin listener is never shed"

        assert await asyncio.gather(*slow) == [200] * CAP
        assert admission.in_flight == 0
        async with client.get("/product-details/P003") as resp:
            assert resp.status == 200

    async def test_rejected_requests_release_their_slot(self, make_bff: MakeBff) -> None:
        client = await make_bff(BFF_MAX_IN_FLIGHT="1")
        for _ in range(3):
            async with client.get("/product-details/bad id!") as resp:
                assert resp.status == 400
        assert client.app[ADMISSION].in_flight == 0  # type: ignore[index]


class TestQueueingCounts:
    async def test_time_queued_shortens_the_deadline(
        self, serve: Serve, mocks: Mocks, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A request that waited 400 ms of its 500 ms in the worker's queue is timed from its
        arrival (Server-Timing total) and its downstream calls are allotted what is left,
        not the 300 ms per-attempt timeout."""
        url = await serve()
        busy_after_receipt(monkeypatch, 0.4)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/product-details/P001") as resp,
        ):
            await resp.read()
        assert resp.status == 200
        assert total_ms(resp) >= 390
        recent = (await mocks.stats("reviews"))["recent"]
        allotted = [int(r["headers"]["x-request-timeout-ms"]) for r in recent]
        assert allotted, "the reviews call was made"
        assert max(allotted) <= 110, allotted

    async def test_a_deadline_spent_in_the_queue_is_refused_at_once(
        self, serve: Serve, mocks: Mocks, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Its deadline went by while it waited: 503 with Retry-After, and nobody is called."""
        url = await serve(BFF_DEADLINE_MS="200")
        busy_after_receipt(monkeypatch, 0.3)
        queued_before = counted("bff_edge_rejections_total", reason="queued")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/product-details/P001") as resp,
        ):
            body = await resp.json(content_type=None)
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        assert body["type"] == "/problems/overloaded"
        assert body["detail"] == "the request's deadline passed while it was queued"
        assert counted("bff_edge_rejections_total", reason="queued") == queued_before + 1
        assert total_ms(resp) >= 290
        for kind in KINDS:
            assert await mocks.requests(kind) == 0, kind

    async def test_each_request_of_a_kept_alive_connection_has_its_own_arrival(
        self, serve: Serve
    ) -> None:
        """The second request on one connection is timed from its own bytes, not from the
        first request's arrival nor from when the connection opened."""
        url = await serve()
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"{url}/product-details/P001") as first:
                await first.read()
            await asyncio.sleep(0.3)
            async with session.get(f"{url}/product-details/P002") as second:
                await second.read()
        assert first.status == second.status == 200
        assert total_ms(second) < 250
