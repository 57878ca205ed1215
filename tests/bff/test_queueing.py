"""The deadline counts the time a request waited inside the BFF, from when its bytes arrived.

These tests run the real runner (the protocol class that stamps the receive time) in the
test's loop, and make the worker busy right after a request's bytes arrived: a synchronous
sleep scheduled from `data_received`, before the loop gets to the handler, as a saturated
worker would be.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from bff_support import KINDS, Mocks, counted
from runner_support import Serve, busy_after_receipt, total_ms


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
