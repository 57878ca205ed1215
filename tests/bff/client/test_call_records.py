"""What one downstream call leaves behind for Server-Timing, the access log and the metrics:
the service it went to, its attempts, its outcome and its duration; and the refusals of a full
bulkhead or a starved loop, which must name the service they concern."""

from __future__ import annotations

import asyncio
from typing import cast

import aiohttp
import pytest
from aiohttp import web
from bff_support import stand_in
from call_support import REVIEWS, call_context, endpoint
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bff.client import DownstreamClient
from bff.context import RequestContext
from bff.errors import Overloaded
from bff.models import Review
from bff.resilience.loop_lag import LoopLag
from bff.settings import DownstreamSettings

_REVIEWS = b'[{"productId":"P001","rating":4,"comment":"fine","author":"ann"}]'


async def reviews_server(aiohttp_server: AiohttpServer) -> str:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=_REVIEWS, content_type="application/json")

    server = await stand_in(aiohttp_server, handler, "/reviews/{id}")
    return str(server.make_url(""))


class TestTheCallIsRecorded:
    """A call records its service, attempts, outcome and duration in the request's context."""

    async def test_a_good_answer(self, aiohttp_server: AiohttpServer) -> None:
        url = await reviews_server(aiohttp_server)
        async with aiohttp.ClientSession() as session:
            client = DownstreamClient(
                DownstreamSettings("reviews", (URL(url),)), session, propagation_margin_s=0.005
            )
            ctx = call_context(2.0)
            await asyncio.sleep(0.5)  # the call starts late in its request
            reply = await client.fetch(REVIEWS, "P001", ctx, ctx.new_call("reviews"))
        assert [r.product_id for r in reply.value] == ["P001"]
        [state] = ctx.calls
        assert (state.service, state.attempts, state.outcome) == ("reviews", 1, "ok")
        # Its own duration (a loopback call: milliseconds), not the request's time so far.
        assert state.started >= 0.5
        assert state.duration is not None
        assert 0 < state.duration < 0.5
        assert client.in_flight == 0
        # The bulkhead's occupancy gauge: the peak since the last sample, then what is left.
        assert client.take_in_flight_peak() == 1
        assert client.take_in_flight_peak() == 0

    def test_a_client_that_made_no_call_has_an_empty_bulkhead(self) -> None:
        settings = DownstreamSettings("reviews", (URL("http://127.0.0.1:1"),))
        client = DownstreamClient(
            settings, cast(aiohttp.ClientSession, None), propagation_margin_s=0.005
        )
        assert (client.in_flight, client.take_in_flight_peak()) == (0, 0)

    async def test_a_full_bulkhead_names_its_service(self) -> None:
        settings = DownstreamSettings("reviews", (URL("http://127.0.0.1:1"),), max_in_flight=0)
        client = DownstreamClient(
            settings, cast(aiohttp.ClientSession, None), propagation_margin_s=0.005
        )
        ctx = call_context(2.0)
        reply = await client.fetch(REVIEWS, "P001", ctx, ctx.new_call("reviews"))
        assert isinstance(reply.error, Overloaded)
        assert str(reply.error) == "reviews: overloaded (0 calls in flight)"
        [state] = ctx.calls
        assert (state.service, state.attempts, state.outcome) == ("reviews", 0, "overloaded")


class Bug(Exception):
    """An exception nobody maps: a bug of ours."""


def _buggy_ids(reviews: list[Review]) -> list[str]:
    raise Bug("ids")


class TestFailedCallsAreRecorded:
    """A call that fails records why: the error's reason, "cancelled" when the BFF gave up on
    it, "bad_response" for a bug of ours (the part is answered as a bad response)."""

    async def test_cancelled(self, aiohttp_server: AiohttpServer) -> None:
        async def slow(request: web.Request) -> web.Response:
            await asyncio.sleep(5)
            return web.Response(body=_REVIEWS, content_type="application/json")

        server = await stand_in(aiohttp_server, slow, "/reviews/{id}")
        async with aiohttp.ClientSession() as session:
            client = DownstreamClient(
                DownstreamSettings("reviews", (URL(str(server.make_url(""))),)),
                session,
                propagation_margin_s=0.005,
            )
            ctx = call_context(2.0)
            task = asyncio.create_task(client.fetch(REVIEWS, "P001", ctx, ctx.new_call("reviews")))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        [state] = ctx.calls
        assert (state.service, state.outcome) == ("reviews", "cancelled")
        assert client.in_flight == 0

    async def test_a_bug_of_ours(self, aiohttp_server: AiohttpServer) -> None:
        url = await reviews_server(aiohttp_server)
        buggy = endpoint("/reviews/", list[Review], _buggy_ids)
        async with aiohttp.ClientSession() as session:
            client = DownstreamClient(
                DownstreamSettings("reviews", (URL(url),)), session, propagation_margin_s=0.005
            )
            ctx = call_context(2.0)
            with pytest.raises(Bug):
                await client.fetch(buggy, "P001", ctx, ctx.new_call("reviews"))
        [state] = ctx.calls
        assert (state.service, state.outcome) == ("reviews", "bad_response")


class TestAPendingCall:
    """A call still pending when the answer is decided was cancelled by the aggregation and has
    not unwound yet: Server-Timing and the access log report it as cancelled, timed until
    now."""

    async def test_reported_as_cancelled_until_now(self) -> None:
        ctx = RequestContext("req-test")
        state = ctx.new_call("reviews")
        assert (state.service, state.outcome, state.attempts) == ("reviews", "pending", 0)
        (part,) = ctx.report().parts
        assert part.outcome == "cancelled"
        assert part.duration_s == pytest.approx(ctx.report().total_s - state.started)

    async def test_a_finished_call_keeps_its_own(self) -> None:
        ctx = RequestContext("req-test")
        state = ctx.new_call("reviews")
        state.outcome, state.duration = "timeout", 0.25
        (part,) = ctx.report().parts
        assert (part.outcome, part.duration_s) == ("timeout", 0.25)


class TestLoopStarved:
    """A timeout counts against the service only while our own loop is on time: lag strictly
    above the neutral threshold means starved."""

    def client(self, lag: LoopLag | None) -> DownstreamClient:
        return DownstreamClient(
            DownstreamSettings("reviews", (URL("http://127.0.0.1:1"),)),
            cast(aiohttp.ClientSession, None),
            propagation_margin_s=0.005,
            loop_lag=lag,
            lag_neutral_s=0.0625,
        )

    def test_no_lag_probe_is_never_starved(self) -> None:
        assert self.client(None).loop_starved() is False

    @pytest.mark.parametrize(("lag", "starved"), [(0.0, False), (0.0625, False), (0.07, True)])
    def test_by_the_measured_lag(self, lag: float, starved: bool) -> None:
        probe = LoopLag()
        probe.lag = lag
        assert self.client(probe).loop_starved() is starved
