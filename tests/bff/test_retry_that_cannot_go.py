"""A planned retry that can no longer be sent (the breaker opened during the pause, or the
deadline ran out) ends the call with the error the service gave, not a refusal of our own:
the answer's `degraded` says what happened to the call (`unavailable`), not `circuit_open`
or `timeout` for an attempt that was never made."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
from aiohttp import web
from call_support import REVIEWS, call_context
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bff.client import DownstreamClient
from bff.context import RequestContext
from bff.errors import DownstreamUnavailable
from bff.settings import BreakerSettings, DownstreamSettings

PAUSE_S = 0.05


async def second_attempt_refused(
    aiohttp_server: AiohttpServer,
    during_the_pause: Callable[[DownstreamClient, RequestContext], None],
) -> tuple[DownstreamUnavailable | None, int]:
    """A 503, a retry planned after PAUSE_S, and `during_the_pause` done meanwhile: the
    call's final error and how many attempts went out."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/reviews/{id}", handler)
    server = await aiohttp_server(app)
    settings = DownstreamSettings(
        "reviews", (URL(str(server.make_url(""))),), breaker=BreakerSettings(min_calls=1000)
    )
    async with aiohttp.ClientSession() as session:
        client = DownstreamClient(settings, session, propagation_margin_s=0.005)
        client.schedule.get_timeout = lambda attempt, response=None: PAUSE_S  # type: ignore[method-assign]
        ctx = call_context(5.0)
        call = ctx.new_call("reviews")
        task = asyncio.create_task(client.fetch(REVIEWS, "P001", ctx, call))
        for _ in range(100):  # until the first attempt failed and the pause began
            if call.attempts == 1 and call.error is not None:
                break
            await asyncio.sleep(0.002)
        during_the_pause(client, ctx)
        reply = await task
    assert reply.error is None or isinstance(reply.error, DownstreamUnavailable)
    return reply.error, call.attempts


class TestTheServicesErrorStands:
    """The second attempt is refused before any network call, with the first one's error."""

    async def test_the_breaker_opened_during_the_pause(self, aiohttp_server: AiohttpServer) -> None:
        def open_it(client: DownstreamClient, ctx: RequestContext) -> None:
            client.breaker._cb.open()  # another call's failures opened it meanwhile

        error, attempts = await second_attempt_refused(aiohttp_server, open_it)
        assert error is not None
        assert error.detail == "status 503"
        assert attempts == 1

    async def test_the_deadline_ran_out_during_the_pause(
        self, aiohttp_server: AiohttpServer
    ) -> None:
        def spend_it(client: DownstreamClient, ctx: RequestContext) -> None:
            ctx.deadline_at = asyncio.get_running_loop().time()

        error, attempts = await second_attempt_refused(aiohttp_server, spend_it)
        assert error is not None
        assert error.detail == "status 503"
        assert attempts == 1
