"""Each attempt tells the service how long we will wait for it: `X-Request-Timeout-Ms` is the
attempt's time (the per-attempt timeout, or less when the request's deadline leaves less) minus
the propagation margin, in whole milliseconds, and at least 1.

A service that is told more than we will wait works on after we gave up; told less, it gives
up on answers we would still have used.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from bff_support import stand_in
from call_support import REVIEWS, fetch
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bff.client import DownstreamClient
from bff.settings import DownstreamSettings


async def header_sent(
    aiohttp_server: AiohttpServer, *, attempt_ms: float, deadline_s: float, margin_s: float
) -> str:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Request-Timeout-Ms", "missing"))
        return web.Response(body=b"[]", content_type="application/json")

    server = await stand_in(aiohttp_server, handler, "/reviews/{id}")
    settings = DownstreamSettings(
        "reviews", (URL(str(server.make_url(""))),), attempt_timeout_s=attempt_ms / 1000
    )
    async with aiohttp.ClientSession() as session:
        client = DownstreamClient(settings, session, propagation_margin_s=margin_s)
        await fetch(client, REVIEWS, budget_s=deadline_s)
    [value] = seen
    return value


class TestTimeoutHeader:
    """The attempt's time minus the margin, floored to whole milliseconds, never below 1."""

    async def test_the_per_attempt_timeout_less_the_margin(
        self, aiohttp_server: AiohttpServer
    ) -> None:
        # 1000 ms - 7.8125 ms = 992.1875 ms: 992 (binary fractions: no rounding surprises).
        got = await header_sent(aiohttp_server, attempt_ms=1000, deadline_s=30, margin_s=0.0078125)
        assert got == "992"

    async def test_a_deadline_shorter_than_the_attempt(self, aiohttp_server: AiohttpServer) -> None:
        got = await header_sent(aiohttp_server, attempt_ms=30_000, deadline_s=2, margin_s=0.5)
        # What is left of 2 s when the attempt starts, less 500 ms: just under 1500.
        assert 1000 < int(got) <= 1500

    async def test_at_least_one_millisecond(self, aiohttp_server: AiohttpServer) -> None:
        got = await header_sent(aiohttp_server, attempt_ms=300, deadline_s=2, margin_s=0.5)
        assert got == "1"
