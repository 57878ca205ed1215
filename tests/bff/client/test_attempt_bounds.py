"""An attempt is bounded in time and accounted for: none starts with 1 ms or less left of the
deadline; one that gets no answer gives up after its timeout, and that timeout (the attempt
had its full time) counts against the service; while it runs, its instance counts it in
flight, which is what sends the next call to a less busy instance."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from bff_support import stand_in
from call_support import REVIEWS, call_context, fetch
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bff.client import DownstreamClient
from bff.errors import DownstreamTimeout
from bff.settings import DownstreamSettings, RetrySettings


async def slow_service(aiohttp_server: AiohttpServer) -> URL:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(body=b"[]", content_type="application/json")

    server = await stand_in(aiohttp_server, handler, "/reviews/{id}")
    return URL(str(server.make_url("")))


def client_for(url: URL, session: aiohttp.ClientSession) -> DownstreamClient:
    settings = DownstreamSettings(
        "reviews", (url,), attempt_timeout_s=0.2, retry=RetrySettings(max_attempts=1)
    )
    return DownstreamClient(settings, session, propagation_margin_s=0.005)


class TestNoTimeLeft:
    """With 1 ms or less left, no attempt: a timeout of the deadline, named as such."""

    @pytest.mark.parametrize("left", [0.0, 0.001])
    async def test_no_attempt(self, left: float) -> None:
        client = client_for(URL("http://127.0.0.1:1"), aiohttp.ClientSession())
        try:
            ctx = call_context(5.0)
            call = ctx.new_call("reviews")
            ctx.deadline_at = asyncio.get_running_loop().time() + left
            reply = await client.fetch(REVIEWS, "P001", ctx, call)
            assert isinstance(reply.error, DownstreamTimeout)
            assert str(reply.error) == "reviews: timeout (deadline reached)"
            assert call.attempts == 0
            assert client.pool.instances[0].in_flight == 0
        finally:
            await client.session.close()


class TestAnAttemptGivesUp:
    """A service that does not answer: the attempt ends at its timeout and counts as a failure."""

    async def test_after_its_timeout(self, aiohttp_server: AiohttpServer) -> None:
        url = await slow_service(aiohttp_server)
        async with aiohttp.ClientSession() as session:
            client = client_for(url, session)
            started = asyncio.get_running_loop().time()
            reply, _ = await fetch(client, REVIEWS, budget_s=5.0)
            waited = asyncio.get_running_loop().time() - started
        assert isinstance(reply.error, DownstreamTimeout)
        assert str(reply.error) == "reviews: timeout (no answer in 200 ms)"
        assert waited < 2.0  # the service would have answered after 3 s
        assert client.breaker.counts == (0, 1)


class TestInFlight:
    """Each attempt counts on its instance while it runs, and only then."""

    async def test_two_concurrent_calls(self, aiohttp_server: AiohttpServer) -> None:
        url = await slow_service(aiohttp_server)
        async with aiohttp.ClientSession() as session:
            client = client_for(url, session)
            [instance] = client.pool.instances
            calls = [asyncio.create_task(fetch(client, REVIEWS, budget_s=5.0)) for _ in range(2)]
            await asyncio.sleep(0.1)
            assert instance.in_flight == 2
            for reply, _ in await asyncio.gather(*calls):
                assert isinstance(reply.error, DownstreamTimeout)
            assert instance.in_flight == 0
