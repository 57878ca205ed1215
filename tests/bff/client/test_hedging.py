"""Delayed hedging of the idempotent GETs: a call that has not answered after the service's
recent p95 gets one hedge, to another instance; the first good answer wins, the other request
is cancelled. Counted by the mocks' /__stats, shown in Server-Timing, bounded by a budget of
its own, and never sent past what the breaker allows.

On its own first: the race of a hedged attempt (which answer wins, what is cancelled), then
`DownstreamClient.start_hedge`, which runs when the hedge timer fires: our own late loop
refuses it (a first answer most likely waits in our queue already); a started hedge is an
attempt of its own, a span marked as the hedge, a permit of its own released whatever
happens, an attempt counted even when the hedge is cancelled before it ever ran. Then whole
BFFs on the real mock services."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from bff_support import BffClient, Mocks, MockService, counted, server_timing
from call_support import REVIEWS, call_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pytest_aiohttp import AiohttpClient
from settings_support import tuned
from yarl import URL

from bff.app import create_app
from bff.client import DownstreamClient, Leg, Reply, race
from bff.context import RequestTrace
from bff.errors import DownstreamNotFound, DownstreamTimeout
from bff.keys import CLIENTS
from bff.observability import metrics
from bff.resilience.loop_lag import LoopLag
from bff.resilience.policy import HEDGE_LATE_S as LATE_S
from bff.resilience.pool import Instance
from bff.settings import BreakerSettings, DownstreamSettings, Settings
from bff.settings.downstream import HedgeSettings

# (reply, whether a retry could change it)
GOOD = (Reply(200, value="value"), False)


NOT_FOUND = (Reply.failed(DownstreamNotFound("reviews", "404"), 404), False)


FAILED = (Reply.failed(DownstreamTimeout("reviews", "slow")), True)


class Leggy:
    """A leg that answers `verdict` after `after` seconds, and remembers a cancellation."""

    def __init__(self, verdict: Leg, after: float) -> None:
        self.verdict = verdict
        self.after = after
        self.cancelled = False
        self.started = False

    async def run(self) -> Leg:
        self.started = True
        try:
            await asyncio.sleep(self.after)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return self.verdict

    def start(self) -> asyncio.Task[Leg]:
        return asyncio.get_running_loop().create_task(self.run())


class TestRace:
    async def test_a_fast_first_answer_sends_no_hedge(self) -> None:
        first, hedge = Leggy(GOOD, 0.0), Leggy(GOOD, 0.0)
        leg, outcome = await race(first.run(), 0.05, lambda _: hedge.start())
        assert leg is GOOD
        assert outcome is None
        assert not hedge.started

    async def test_the_hedge_wins_and_the_first_request_is_cancelled(self) -> None:
        first, hedge = Leggy(GOOD, 1.0), Leggy(NOT_FOUND, 0.0)
        leg, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert leg is NOT_FOUND, "a final answer (404) is a good answer"
        assert outcome == "won"
        assert first.cancelled

    async def test_a_won_hedge_leaves_no_cancel_behind(self) -> None:
        """The caller's task was cancelled out of the first request; that cancel is taken
        back, so an outer timeout or a later await does not see it."""
        first, hedge = Leggy(GOOD, 1.0), Leggy(GOOD, 0.0)
        _leg, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert outcome == "won"
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0
        await asyncio.sleep(0)  # would raise CancelledError if the cancel were still pending

    async def test_a_first_request_that_turns_the_cancel_into_an_error_still_loses(
        self,
    ) -> None:
        async def first() -> Leg:
            try:
                await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                raise ConnectionResetError("closed while cancelled") from None
            return GOOD

        hedge = Leggy(GOOD, 0.0)
        leg, outcome = await race(first(), 0.01, lambda _: hedge.start())
        assert (leg, outcome) == (GOOD, "won")
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0

    async def test_the_first_answers_first_and_the_hedge_is_cancelled(self) -> None:
        first, hedge = Leggy(GOOD, 0.05), Leggy(GOOD, 1.0)
        leg, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert leg is GOOD
        assert outcome == "lost"
        assert hedge.started
        assert hedge.cancelled, "the loser is cancelled, not waited for"

    async def test_a_failed_hedge_never_wins_while_the_first_may_succeed(self) -> None:
        first, hedge = Leggy(GOOD, 0.05), Leggy(FAILED, 0.0)
        leg, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert leg is GOOD
        assert outcome == "failed"

    async def test_a_failed_first_request_waits_for_the_hedge(self) -> None:
        first, hedge = Leggy(FAILED, 0.02), Leggy(GOOD, 0.05)
        leg, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert leg is GOOD
        assert outcome == "won"

    async def test_both_failed_the_first_requests_error_stands(self) -> None:
        other = (Reply.failed(DownstreamTimeout("reviews", "other")), True)
        first, hedge = Leggy(FAILED, 0.02), Leggy(other, 0.0)
        leg, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert leg is FAILED
        assert outcome == "failed"

    async def test_no_hedge_allowed_the_first_request_goes_on_alone(self) -> None:
        first = Leggy(GOOD, 0.03)
        leg, outcome = await race(first.run(), 0.01, lambda _: None)
        assert leg is GOOD
        assert outcome is None

    async def test_a_cancelled_caller_cancels_both_requests(self) -> None:
        first, hedge = Leggy(GOOD, 1.0), Leggy(GOOD, 1.0)
        task = asyncio.ensure_future(race(first.run(), 0.01, lambda _: hedge.start()))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert first.cancelled
        assert hedge.cancelled


class TestHedgeBudgetIsNotTheRetryBudget:
    def test_a_hedge_the_budget_refuses_is_not_counted_as_a_refused_retry(self) -> None:
        """`bff_retry_budget_exhausted_total` counts retries that were due and refused; a
        hedge refused by its own budget is none of those (it once landed there, service "")."""
        from typing import cast

        import aiohttp
        from bff_support import counted
        from yarl import URL

        from bff.client import DownstreamClient
        from bff.observability import metrics
        from bff.settings import DownstreamSettings
        from bff.settings.downstream import HedgeSettings

        settings = DownstreamSettings(
            "reviews",
            (URL("http://127.0.0.1:1"),),
            hedge=HedgeSettings(budget_ratio=0.0, budget_min=0),
        )
        client = DownstreamClient(
            settings, cast(aiohttp.ClientSession, None), propagation_margin_s=0.005
        )
        forget = metrics.watch(client)
        before = counted("bff_retry_budget_exhausted_total", service="reviews")
        assert client.hedging.admit(10.0, 0.005, False, (10, 0)) == "budget"
        assert counted("bff_retry_budget_exhausted_total", service="reviews") == before
        forget()


class TestCancelsThatAreNotOurs:
    """The race takes back its own cancel and only that: the caller's other cancels, earlier
    or at the same moment, still count, and nothing is left for the loop's handler."""

    async def test_a_cancel_the_caller_had_before_does_not_turn_a_won_hedge_into_a_cancel(
        self,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)  # caught, not taken back: cancelling() stays 1
        first, hedge = Leggy(GOOD, 1.0), Leggy(GOOD, 0.0)
        _, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert outcome == "won"
        assert task.cancelling() == 1
        task.uncancel()

    async def test_a_cancel_swallowed_with_ours_is_delivered(self) -> None:
        """The fan-out cancels the caller as the hedge wins; the first request turns the one
        CancelledError it gets into an answer (as the client turns errors into verdicts)."""

        async def first() -> Leg:
            try:
                await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                return FAILED, None
            return GOOD

        async def caller() -> None:
            me = asyncio.current_task()
            assert me is not None

            def start(_: float) -> asyncio.Task[Leg]:
                hedge = Leggy(GOOD, 0.0).start()
                hedge.add_done_callback(lambda _: me.cancel())  # just before the race sees it
                return hedge

            await race(first(), 0.01, start)
            await asyncio.sleep(1.0)

        task = asyncio.ensure_future(caller())
        await asyncio.wait([task], timeout=0.5)
        assert task.cancelled(), "the fan-out's cancel was lost"

    async def test_a_hedge_that_cannot_start_is_logged_and_the_first_goes_on(self) -> None:
        complaints = _loop_complaints()

        def start(_: float) -> asyncio.Task[Leg]:
            raise RuntimeError("a bug in starting the hedge")

        leg, outcome = await race(Leggy(GOOD, 0.03).run(), 0.01, start)
        assert (leg, outcome) == (GOOD, None)
        assert complaints == []

    async def test_a_hedge_that_failed_as_the_caller_was_cancelled_is_retrieved(self) -> None:
        complaints = _loop_complaints()

        async def caller() -> None:
            me = asyncio.current_task()
            assert me is not None

            async def broken_hedge() -> Leg:
                me.cancel()  # the fan-out's deadline, in the same turn as the hedge fails
                raise RuntimeError("a bug in the hedge")

            starter = lambda _: asyncio.ensure_future(broken_hedge())  # noqa: E731
            await race(Leggy(GOOD, 1.0).run(), 0.01, starter)

        task = asyncio.ensure_future(caller())
        await asyncio.wait([task])
        assert task.cancelled()
        del task
        gc.collect()
        await asyncio.sleep(0)
        assert complaints == []


def _loop_complaints() -> list[str]:
    """What reaches the loop's exception handler from now on (reset with the loop)."""
    complaints: list[str] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda _, context: complaints.append(context["message"])
    )
    return complaints


class Call:
    """One call of the client, its first request out to `first`: what a hedge timer sees."""

    def __init__(self, client: DownstreamClient, first: Instance) -> None:
        self.client = client
        self.first = first
        self.ctx = call_context(2.0)
        # A sampled request: its calls get client spans.
        self.ctx.trace = RequestTrace("ab" * 16, "cd" * 8, "01", None)
        self.call = self.ctx.new_call("reviews")

    def start_hedge(self, late_s: float) -> asyncio.Task[Leg] | None:
        return self.client.start_hedge(
            REVIEWS, "/reviews/P001", "P001", self.ctx, self.call, self.first, None, late_s
        )


Setup = tuple[DownstreamClient, Instance, InMemorySpanExporter]


@pytest.fixture
async def setup(mocks: Mocks) -> AsyncIterator[Setup]:
    """A reviews client (two instances: the mock twice), traced, and one call of it."""
    url = URL(mocks.url("reviews"))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = DownstreamSettings("reviews", (url, url.with_path("/")))
    async with aiohttp.ClientSession() as session:
        client = DownstreamClient(
            settings, session, propagation_margin_s=0.005, tracer=provider.get_tracer("test")
        )
        forget = metrics.watch(client)
        try:
            yield client, client.pool.pick(None), exporter
        finally:
            forget()


def attempts(outcome: str) -> float:
    return counted("bff_downstream_attempts_total", service="reviews", outcome=outcome)


def skipped(reason: str) -> float:
    """Hedges of reviews due but not sent for `reason`, so far in this process."""
    return counted("bff_downstream_hedges_skipped_total", service="reviews", reason=reason)


class TestRefused:
    """No hedge, no budget token spent, and the reason counted."""

    async def test_a_timer_that_fired_late_sends_no_hedge(self, setup: Setup) -> None:
        client, first, _ = setup
        before = skipped("loop_lag")
        assert Call(client, first).start_hedge(LATE_S + 0.001) is None
        assert client.hedging.budget_counts[1] == 0
        assert skipped("loop_lag") == before + 1

    async def test_a_timer_more_than_3_ms_late_sends_no_hedge(self, setup: Setup) -> None:
        """The figure docs/resilience.md gives ("the timer fired > 3 ms late"), written out:
        the test above reads the bound from the code and would pass whatever it became."""
        client, first, _ = setup
        before = skipped("loop_lag")
        assert Call(client, first).start_hedge(0.0035) is None
        assert skipped("loop_lag") == before + 1

    async def test_a_starved_loop_sends_no_hedge_even_on_time(self, setup: Setup) -> None:
        client, first, _ = setup
        client.loop_lag = LoopLag()
        client.loop_lag.lag = 1.0  # the loop-lag probe says our loop runs a second late
        before = skipped("loop_lag")
        assert Call(client, first).start_hedge(0.0) is None
        assert skipped("loop_lag") == before + 1

    async def test_an_open_breaker_sends_no_hedge(self, setup: Setup) -> None:
        client, first, _ = setup
        client.breaker._cb.open()
        before = skipped("breaker")
        assert Call(client, first).start_hedge(0.0) is None
        assert skipped("breaker") == before + 1


class TestStarted:
    async def test_a_hedge_just_within_the_lateness_bound_goes_out_as_a_hedge(
        self, setup: Setup
    ) -> None:
        client, first, exporter = setup
        before = attempts("ok")
        hedge = Call(client, first).start_hedge(LATE_S)
        assert hedge is not None
        reply, _ = await hedge
        assert reply.error is None
        assert reply.status == 200
        assert attempts("ok") == before + 1
        (span,) = exporter.get_finished_spans()
        attributes = dict(span.attributes or {})
        assert attributes["bff.hedge"] is True
        assert attributes["bff.service"] == "reviews"
        assert attributes["url.full"].endswith("/reviews/P001")
        assert attributes["bff.breaker.state"] == "closed"
        assert attributes["bff.outcome"] == "ok"
        # The other instance than the first request's.
        assert attributes["bff.instance"] != str(first.base_url)
        assert client.hedging.budget_counts[1] == 1

    async def test_a_hedge_cancelled_before_it_ran_is_counted_and_releases_its_permit(
        self, setup: Setup
    ) -> None:
        client, first, exporter = setup
        before = attempts("cancelled")
        hedge = Call(client, first).start_hedge(0.0)
        assert hedge is not None
        hedge.cancel()  # the fan-out answered at its deadline just then
        await asyncio.gather(hedge, return_exceptions=True)
        assert attempts("cancelled") == before + 1
        (span,) = exporter.get_finished_spans()
        assert dict(span.attributes or {})["bff.outcome"] == "cancelled"
        # The permit went back: a half-open breaker would admit its probe now.
        client.breaker._cb.open()
        client.breaker._opened_at = 0.0
        assert client.breaker.admit().probe


Build = Callable[..., Awaitable[BffClient]]


WARM_UP = 12  # answers before the p95 is known (8) and a little more


@pytest.fixture
async def second_reviews(mocks: Mocks) -> MockService:
    """A second reviews instance, and its admin API."""
    return await mocks.another("reviews")


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


async def warm_up(bff: BffClient) -> None:
    for n in range(WARM_UP):
        status, _ = await fetch(bff, n)
        assert status == 200


class TestHedge:
    async def test_a_straggler_is_hedged_to_the_other_instance_and_the_loser_cancelled(
        self, build: Build, mocks: Mocks, second_reviews: MockService
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
        on_slow = [e for e in (await mocks.stats("reviews"))["recent"] if e["path"] == path]
        on_fast = [e for e in (await second_reviews.stats())["recent"] if e["path"] == path]
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
