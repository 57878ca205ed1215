"""A retry goes to another instance than the attempt that just failed (when there is one):
an instance that failed once is the likeliest to fail again, and the user's answer depends on
the retry finding a healthy one."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from call_support import REVIEWS, fetch
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bff.client import DownstreamClient
from bff.errors import DownstreamUnavailable
from bff.settings import BreakerSettings, DownstreamSettings, OutlierSettings, RetrySettings


class TestRetryElsewhere:
    """Two instances that both answer 503: every call's two attempts hit both, one each."""

    async def test_each_retry_switches_instance(self, aiohttp_server: AiohttpServer) -> None:
        hits: list[str] = []

        def app(name: str) -> web.Application:
            async def handler(request: web.Request) -> web.Response:
                hits.append(name)
                return web.Response(status=503)

            application = web.Application()
            application.router.add_get("/reviews/{id}", handler)
            return application

        servers = [await aiohttp_server(app(n)) for n in ("a", "b")]
        settings = DownstreamSettings(
            "reviews",
            tuple(URL(str(s.make_url(""))) for s in servers),
            # Nothing but the instance choice may change between attempts: no breaker, no
            # ejection, a budget for every retry, no pause.
            retry=RetrySettings(
                max_attempts=2, budget_min_retries=100, backoff_base_s=0.0, backoff_max_s=0.0
            ),
            breaker=BreakerSettings(min_calls=1000),
            outlier=OutlierSettings(consecutive_failures=1000),
        )
        async with aiohttp.ClientSession() as session:
            client = DownstreamClient(settings, session, propagation_margin_s=0.005)
            for _ in range(12):
                hits.clear()
                reply, _ = await fetch(client, REVIEWS)
                assert isinstance(reply.error, DownstreamUnavailable)
                assert sorted(hits) == ["a", "b"]
