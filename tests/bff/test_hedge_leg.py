"""`DownstreamClient.start_hedge`: whether the hedge of one attempt goes out, and what it
leaves behind.

It runs when the hedge timer fires. Our own late loop refuses it (a first answer most likely
waits in our queue already); a started hedge is an attempt of its own: a span marked as the
hedge, a permit of its own released whatever happens, an attempt counted even when the hedge
is cancelled before it ever ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from bff_support import Mocks, counted
from call_support import REVIEWS, call_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from yarl import URL

from bff.client import DownstreamClient, Leg
from bff.context import RequestTrace
from bff.observability import metrics
from bff.resilience.loop_lag import LoopLag
from bff.resilience.policy import HEDGE_LATE_S as LATE_S
from bff.resilience.pool import Instance
from bff.settings import DownstreamSettings


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
    return counted("bff_downstream_hedges_skipped_total", service="reviews", reason=reason)


class TestRefused:
    """No hedge, no budget token spent, and the reason counted."""

    async def test_a_timer_that_fired_late_sends_no_hedge(self, setup: Setup) -> None:
        client, first, _ = setup
        before = skipped("loop_lag")
        assert Call(client, first).start_hedge(LATE_S + 0.001) is None
        assert client.hedging.budget_counts[1] == 0
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
