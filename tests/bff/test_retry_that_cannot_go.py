"""A planned retry that can no longer be sent (the breaker opened during the pause, or the
deadline ran out) ends the call with the error the service gave, not a refusal of our own:
the answer's `degraded` says what happened to the call (`unavailable`), not `circuit_open`
or `timeout` for an attempt that was never made."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from call_support import REVIEWS, call_context
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bff.clients.attempt import Call
from bff.clients.base import DownstreamClient
from bff.clients.retry import RetryableAttempt
from bff.deadline import Deadline
from bff.errors import DownstreamUnavailable
from bff.settings import BreakerSettings, DownstreamSettings


class _Spent:
    def remaining(self) -> float:
        return 0.0


async def first_attempt_failed(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession
) -> Call:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/reviews/{id}", handler)
    server = await aiohttp_server(app)
    settings = DownstreamSettings(
        "reviews", (URL(str(server.make_url(""))),), breaker=BreakerSettings(min_calls=1000)
    )
    client = DownstreamClient(settings, session, propagation_margin_s=0.005)
    ctx = call_context(Deadline(5.0), {})
    call = Call(client, ctx, ctx.new_call("reviews"), REVIEWS, "P001")
    with pytest.raises(RetryableAttempt):
        await call.attempt()  # 503: a retry is planned
    return call


class TestTheServicesErrorStands:
    """The second attempt is refused before any network call, with the first one's error."""

    async def test_the_breaker_opened_during_the_pause(self, aiohttp_server: AiohttpServer) -> None:
        async with aiohttp.ClientSession() as session:
            call = await first_attempt_failed(aiohttp_server, session)
            call.client.breaker._cb.open()  # another call's failures opened it meanwhile
            with pytest.raises(DownstreamUnavailable) as ended:
                await call.attempt()
        assert ended.value.detail == "status 503"

    async def test_the_deadline_ran_out_during_the_pause(
        self, aiohttp_server: AiohttpServer
    ) -> None:
        async with aiohttp.ClientSession() as session:
            call = await first_attempt_failed(aiohttp_server, session)
            call.ctx.deadline = _Spent()  # type: ignore[assignment]
            with pytest.raises(DownstreamUnavailable) as ended:
                await call.attempt()
        assert ended.value.detail == "status 503"
