"""The harness's own clients (bench/probes.py) and wrk's script (bench/load.lua), against
small servers on loopback that record what they were sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from aiohttp.test_utils import TestServer

from bench import probes, wrk
from bench.measure import POLITE_HOST


async def _serve(handler: Callable[[web.Request], object]) -> TestServer:
    app = web.Application()
    app.router.add_get("/product-details/{id}", handler)  # type: ignore[arg-type]
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


class TestHerd:
    async def test_identical_requests_a_fixed_number_at_a_time(self) -> None:
        seen: list[str] = []
        at_once = peak = 0

        async def handler(request: web.Request) -> web.Response:
            nonlocal at_once, peak
            seen.append(request.match_info["id"])
            at_once += 1
            peak = max(peak, at_once)
            await asyncio.sleep(0.05)
            at_once -= 1
            return web.Response(text="{}")

        server = await _serve(handler)
        try:
            tally = await probes.herd(str(server.make_url("")).rstrip("/"), "COLD1", 30, 10)
        finally:
            await server.close()
        assert dict(tally.statuses) == {"200": 30}
        assert seen == ["COLD1"] * 30
        assert peak == 10
        assert len(tally.ok_ms) == 30


class TestPolite:
    async def test_asks_from_another_loopback_address_on_a_fixed_beat(self) -> None:
        remotes: list[str | None] = []

        async def handler(request: web.Request) -> web.Response:
            remotes.append(request.remote)
            if len(remotes) == 2:
                return web.Response(status=429)  # no Retry-After: counted
            return web.Response(text="{}")

        server = await _serve(handler)
        try:
            base = str(server.make_url("")).rstrip("/")
            tally = await probes.polite(base, seconds=0.5, every_s=0.1, local_host=POLITE_HOST)
        finally:
            await server.close()
        assert set(remotes) == {POLITE_HOST}
        assert dict(tally.statuses) == {"200": 4, "429": 1}
        assert tally.no_retry_after == 1


class TestStream:
    async def test_first_and_last_line_are_timed_apart(self) -> None:
        """The first line is written at once and the last 300 ms later: the probe must see
        the gap (a client that timed the whole body would not)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            assert request.headers["Accept"] == probes.NDJSON
            response = web.StreamResponse(
                headers={"Content-Type": probes.NDJSON, "Server-Timing": "product;dur=51.5"}
            )
            await response.prepare(request)
            await response.write(b'{"product": {}, "pending": ["reviews"]}\n')
            await asyncio.sleep(0.3)
            await response.write(b'{"part": "reviews"}\n{"done": true}\n')
            await response.write_eof()
            return response

        server = await _serve(handler)
        try:
            base = str(server.make_url("")).rstrip("/")
            tally = await probes.stream(base, ["S1", "S2"], at_once=2)
        finally:
            await server.close()
        assert dict(tally.statuses) == {"200": 2}
        assert tally.incomplete == 0
        assert tally.product_ms == [51.5, 51.5]
        for first, last in zip(tally.first_ms, tally.last_ms, strict=True):
            assert last - first >= 250

    async def test_an_answer_cut_before_its_last_line_is_counted(self) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": probes.NDJSON})
            await response.prepare(request)
            await response.write(b'{"product": {}, "pending": ["reviews"]}\n')
            await response.write_eof()
            return response

        server = await _serve(handler)
        try:
            tally = await probes.stream(str(server.make_url("")).rstrip("/"), ["S1"], 1)
        finally:
            await server.close()
        assert tally.incomplete == 1


class TestWrkScript:
    async def test_eager_clients_ask_again_at_once_polite_ones_wait(
        self, binary: Callable[[str], str]
    ) -> None:
        """Every answer is a 503 with Retry-After: 1. Eager connections ask again at once
        (hundreds of answers a second); polite ones wait 1-2 s after each."""
        binary("wrk")

        async def handler(request: web.Request) -> web.Response:
            echo = {"X-Request-ID": request.headers["X-Request-ID"]}  # as the targets do
            return web.Response(status=503, headers={"Retry-After": "1", **echo})

        server = await _serve(handler)
        try:
            base = str(server.make_url("")).rstrip("/")

            def drive(polite: bool) -> wrk.WrkResult:
                return wrk.run(
                    base, connections=4, seconds=1, threads=1, ids="hot", seed=1, polite=polite
                )

            eager = await asyncio.to_thread(drive, False)
            polite = await asyncio.to_thread(drive, True)
        finally:
            await server.close()
        assert eager.summary["statuses"]["503"] > 100
        assert eager.summary["no_retry_after"] == 0
        assert eager.summary["refused_us"]["n"] == eager.summary["statuses"]["503"]
        assert polite.summary["statuses"]["503"] <= 8

    async def test_refusals_without_retry_after_and_the_hot_id(
        self, binary: Callable[[str], str]
    ) -> None:
        binary("wrk")
        ids: set[str] = set()

        async def handler(request: web.Request) -> web.Response:
            ids.add(request.match_info["id"])
            return web.Response(status=503)

        server = await _serve(handler)
        try:
            base = str(server.make_url("")).rstrip("/")
            result = await asyncio.to_thread(
                wrk.run, base, connections=2, seconds=1, threads=1, ids="hot", seed=1
            )
        finally:
            await server.close()
        assert ids == {"P00001"}
        assert result.summary["no_retry_after"] == result.summary["statuses"]["503"] > 0
