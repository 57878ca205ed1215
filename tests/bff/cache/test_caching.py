"""The part cache in the request path, against the real mock services (and a real redis-server).

Every figure here is a count of downstream calls (the mocks' `/__stats`), a status, a header or
a body: no timings, except "answered within the deadline" with a wide margin.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from aiohttp import web
from bff_support import (
    KINDS,
    BffClient,
    LogLines,
    MakeBff,
    Mocks,
    get_answer,
    server_timing,
    stand_in,
    timed_get,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pytest_aiohttp import AiohttpServer

from bff.app import create_app
from bff.settings import Settings

ID = "P001"


class TestFreshCopies:
    """A part stored fresh answers the next request with no call; Server-Timing says "cache"."""

    async def test_second_request_makes_no_call(self, bff: BffClient, mocks: Mocks) -> None:
        first, body1 = await get_answer(bff)
        before = await mocks.calls()
        second, body2 = await get_answer(bff)
        assert await mocks.calls() == before
        assert body2 == body1
        timing = server_timing(second.headers["Server-Timing"])
        assert {timing[k].get("desc") for k in KINDS} == {"cache"}
        assert "desc" not in server_timing(first.headers["Server-Timing"])["product"]

    async def test_each_product_has_its_own_copy(self, bff: BffClient, mocks: Mocks) -> None:
        before = await mocks.calls()
        for _ in range(2):
            for product_id in ("P001", "P002"):
                _, body = await get_answer(bff, f"/product-details/{product_id}")
                assert body["product"]["id"] == product_id
                assert body["inventory"]["productId"] == product_id
        assert await mocks.calls() == {k: v + 2 for k, v in before.items()}

    async def test_cache_off_calls_every_time(self, make_bff: MakeBff, mocks: Mocks) -> None:
        """Nothing kept and nothing coalesced: five concurrent requests, five calls each, and
        answers that may not be reused."""
        bff = await make_bff(BFF_CACHE="off")
        response, _ = await get_answer(bff)
        # Nothing kept, so nothing to promise: our answer is fresh for no time at all.
        assert response.headers["Cache-Control"].endswith(", max-age=0")
        before = await mocks.calls()
        await asyncio.gather(*(get_answer(bff) for _ in range(5)))
        assert await mocks.calls() == {k: v + 5 for k, v in before.items()}


class TestNotFoundAsAValue:
    """A reviews 404 stands for "no reviews yet": an answer, a complete part, not stored."""

    async def test_a_404_for_reviews_is_an_empty_part_and_asked_again_next_time(
        self, bff: BffClient, mocks: Mocks, capsys: pytest.CaptureFixture[str]
    ) -> None:
        await mocks.faults("reviews", error_rate=1, error_status=404)
        before = await mocks.requests("reviews")
        resp, body = await get_answer(bff)
        assert (resp.status, body["reviews"], body["degraded"]) == (200, [], {})
        assert "desc" not in server_timing(resp.headers["Server-Timing"])["reviews"]
        log = capsys.readouterr().out
        assert "'reviews': {'outcome': 'ok', 'attempts': 1}" in log
        await get_answer(bff)
        assert await mocks.requests("reviews") == before + 2  # nothing was kept


class TestHerd:
    """500 concurrent requests for one cold id make exactly one call per service."""

    async def test_one_call_per_service(self, make_bff: MakeBff, mocks: Mocks) -> None:
        # The adaptive concurrency limit starts at 64 and would refuse most of a cold burst of
        # 500: what is pinned here is coalescing, so admission is the fixed cap alone.
        bff = await make_bff({"edge.adaptive_concurrency": False}, BFF_DEADLINE_MS=20_000)
        for kind in KINDS:
            # Long enough that the herd arrives while the calls are out; fresh for longer than
            # the herd can last. Inventory's default max-age=2 is counted in whole seconds of
            # age, so its copy could be fresh for ~1 s only: on a busy machine the last of the
            # 500 arrived after that, and inventory was rightly called a second time.
            await mocks.faults(kind, latency_ms=150, cache_control="max-age=60")
        results = await asyncio.gather(
            *(get_answer(bff, "/product-details/HERD1") for _ in range(500))
        )
        assert {resp.status for resp, _ in results} == {200}
        assert all(body["degraded"] == {} for _, body in results)
        assert await mocks.calls() == dict.fromkeys(KINDS, 1)
        descs = Counter(
            server_timing(resp.headers["Server-Timing"])["product"].get("desc", "live")
            for resp, _ in results
        )
        assert descs["live"] == 1
        assert descs["coalesced"] >= 1


class TestStale:
    """A failed live call with a copy inside stale-if-error is answered from the copy."""

    async def test_stale_product_is_a_200(self, bff: BffClient, mocks: Mocks) -> None:
        await mocks.faults("product", cache_control="max-age=1, stale-if-error=600")
        await get_answer(bff)
        await asyncio.sleep(1.2)
        await mocks.faults("product", error_rate=1.0, cache_control="max-age=1, stale-if-error=600")
        resp, body = await get_answer(bff)
        assert resp.status == 200
        assert body["product"]["id"] == ID
        assert set(body["stale"]) == {"product"}
        assert body["stale"]["product"] >= 1
        assert body["degraded"] == {}
        assert server_timing(resp.headers["Server-Timing"])["product"]["desc"] == "stale"
        assert resp.headers["Cache-Control"] == "no-store"

    async def test_without_a_copy_the_failure_stands(self, bff: BffClient, mocks: Mocks) -> None:
        await mocks.faults("product", error_rate=1.0)
        resp, _ = await get_answer(bff)
        assert resp.status == 502

    async def test_reviews_failing_after_warm_up_every_answer_complete_or_stale(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_bff(BFF_DEADLINE_MS=2000)
        window = "max-age=1, stale-if-error=600"
        await mocks.faults("reviews", cache_control=window)
        ids = [f"WARM{i}" for i in range(20)]
        for i in ids:  # the warm-up pass: every part stored
            _, body = await get_answer(bff, f"/product-details/{i}")
            assert body["degraded"] == {}
        await asyncio.sleep(1.2)
        await mocks.faults("reviews", error_rate=1.0, cache_control=window)
        results = await asyncio.gather(*(get_answer(bff, f"/product-details/{i}") for i in ids * 3))
        assert {resp.status for resp, _ in results} == {200}
        assert all(body["degraded"] == {} for _, body in results)
        assert all("reviews" in body["stale"] for _, body in results)


class TestRevalidation:
    """An expired copy with a tag is revalidated with If-None-Match; the 304 renews it."""

    async def test_a_304_from_the_service_renews_the_copy(
        self, bff: BffClient, mocks: Mocks
    ) -> None:
        await mocks.faults("product", cache_control="max-age=1")
        _, body1 = await get_answer(bff)
        await asyncio.sleep(1.2)
        before = await mocks.requests("product")
        resp, body2 = await get_answer(bff)
        assert await mocks.requests("product") == before + 1
        recent = (await mocks.stats("product"))["recent"][-1]
        assert recent["headers"]["if-none-match"].startswith('"')
        assert server_timing(resp.headers["Server-Timing"])["product"]["desc"] == "revalidated"
        assert body2 == body1
        # Renewed: fresh again, no call.
        await get_answer(bff)
        assert await mocks.requests("product") == before + 1


class TestRefreshInBackground:
    """A copy past its max-age but within stale-while-revalidate is answered at once, and one
    call in the background, made as this request's (its id, its forwarded headers, its tag,
    a budget of its own), renews the copy for the requests after it."""

    @pytest.mark.parametrize("etag", [True, False], ids=["304-renews", "200-replaces"])
    async def test_a_stale_copy_is_served_and_renewed_behind_the_answer(
        self, make_bff: MakeBff, mocks: Mocks, etag: bool
    ) -> None:
        bff = await make_bff(BFF_DEADLINE_MS=800)
        swr = "max-age=1, stale-while-revalidate=60"
        await mocks.faults("reviews", cache_control=swr, etag=etag)
        await get_answer(bff)
        await asyncio.sleep(1.2)  # past the max-age
        before = await mocks.requests("reviews")
        # This request may take 100 ms: its refresh, which outlives it, must not be bound by it.
        headers = {"X-Request-ID": "swr-1", "Accept-Language": "de", "X-Request-Timeout-Ms": "100"}
        resp, body = await get_answer(bff, headers=headers)
        # Served from the copy (a stale-while-revalidate copy is "cache"; "stale" is the
        # stale-if-error stand-in for a failed call).
        assert server_timing(resp.headers["Server-Timing"])["reviews"]["desc"] == "cache"
        assert body["stale"] == {}
        for _ in range(100):  # the refresh runs behind the answer: answered within 2 s
            refresh = (await mocks.stats("reviews"))["recent"][-1]
            if refresh["headers"].get("x-request-id") == "swr-1" and refresh["status"]:
                break
            await asyncio.sleep(0.02)
        assert await mocks.requests("reviews") == before + 1
        assert refresh["status"] == (304 if etag else 200)
        sent = refresh["headers"]
        assert sent["x-request-id"] == "swr-1"
        assert sent["accept-language"] == "de"
        assert ("if-none-match" in sent) is etag
        # A budget like any call's: the per-attempt timeout (300 ms) within a deadline of its
        # own (800 ms, not the 100 ms of the request it refreshes for), less the 5 ms margin.
        assert 250 <= int(sent["x-request-timeout-ms"]) <= 295
        await asyncio.sleep(0.1)  # the renewed copy is stored as the refresh returns
        resp, _ = await get_answer(bff)
        assert server_timing(resp.headers["Server-Timing"])["reviews"]["desc"] == "cache"
        assert await mocks.requests("reviews") == before + 1  # fresh again: no call


class TestUnaskedNotModified:
    """A 304 to a request that sent no If-None-Match is not an answer: `bad_response`."""

    @pytest.mark.parametrize("cache", ["on", "off"])
    async def test_a_304_out_of_the_blue(
        self, make_bff: MakeBff, aiohttp_server: AiohttpServer, cache: str
    ) -> None:
        async def inventory(request: web.Request) -> web.Response:
            assert "If-None-Match" not in request.headers
            return web.Response(status=304, headers={"ETag": '"x"'})

        server = await stand_in(aiohttp_server, inventory, "/inventory/{id}")
        url = str(server.make_url("")).rstrip("/")
        bff = await make_bff(BFF_INVENTORY_URL=url, BFF_CACHE=cache)
        resp, body = await get_answer(bff)
        assert resp.status == 200
        assert body["degraded"] == {"inventory": "bad_response"}


class TestWhoMayShare:
    """`private`, `Vary` and `Authorization` decide which request a stored copy may answer."""

    async def test_private_is_kept_per_identity(self, bff: BffClient, mocks: Mocks) -> None:
        await mocks.faults("product", cache_control="private, max-age=60")
        alice = {"Authorization": "Bearer alice"}
        bob = {"Authorization": "Bearer bob"}
        await get_answer(bff, headers=alice)
        before = await mocks.requests("product")
        await get_answer(bff, headers=alice)
        assert await mocks.requests("product") == before  # alice's own copy
        await get_answer(bff, headers=bob)
        assert await mocks.requests("product") == before + 1  # never alice's copy

    async def test_private_without_identity_is_not_stored(
        self, bff: BffClient, mocks: Mocks
    ) -> None:
        await mocks.faults("product", cache_control="private, max-age=60")
        await get_answer(bff)
        before = await mocks.requests("product")
        await get_answer(bff)
        assert await mocks.requests("product") == before + 1

    @pytest.mark.parametrize(
        ("cache_control", "shared"), [("max-age=60", False), ("public, max-age=60", True)]
    )
    async def test_authorization_keeps_a_copy_for_that_identity_unless_public(
        self, bff: BffClient, mocks: Mocks, cache_control: str, shared: bool
    ) -> None:
        await mocks.faults("product", cache_control=cache_control)
        await get_answer(bff, headers={"Authorization": "Bearer alice"})
        before = await mocks.requests("product")
        await get_answer(bff, headers={"Authorization": "Bearer bob"})
        assert await mocks.requests("product") == before + (0 if shared else 1)

    async def test_vary_keeps_one_copy_per_header_value(
        self, make_bff: MakeBff, aiohttp_server: AiohttpServer
    ) -> None:
        seen: list[str] = []

        async def reviews(request: web.Request) -> web.Response:
            language = request.headers.get("Accept-Language", "")
            seen.append(language)
            body = [{"productId": ID, "rating": 5, "comment": language, "author": "a"}]
            headers = {"Cache-Control": "max-age=60", "Vary": "Accept-Language"}
            return web.json_response(body, headers=headers)

        server = await stand_in(aiohttp_server, reviews, "/reviews/{id}")
        bff = await make_bff(BFF_REVIEWS_URL=str(server.make_url("")).rstrip("/"))
        for language in ("en", "en", "fr", "en", "fr"):
            _, body = await get_answer(bff, headers={"Accept-Language": language})
            assert body["reviews"][0]["comment"] == language
        assert seen == ["en", "fr"]


class TestVisible:
    """The access log says where each part came from."""

    async def test_access_log_names_the_source(self, bff: BffClient, log_lines: LogLines) -> None:
        await get_answer(bff)
        await get_answer(bff)
        logged = log_lines()
        lines = [line for line in logged if line.get("event") == "request"]
        assert lines[-1]["parts"]["product"]["source"] == "cache"
        assert "source" not in lines[-2]["parts"]["product"]
        assert lines[-1]["stale"] == {}


class TestWithinTheDeadline:
    """Answers keep the deadline whatever the cache's state (wide margins)."""

    async def test_elapsed_is_bounded(self, make_bff: MakeBff, mocks: Mocks) -> None:
        bff = await make_bff(BFF_DEADLINE_MS=300)
        await mocks.faults("reviews", latency_ms=5000)
        started = time.perf_counter()
        resp, body, _ = await timed_get(bff, "/product-details/SLOW1")
        assert resp.status == 200
        assert body["degraded"] == {"reviews": "timeout"}
        assert time.perf_counter() - started < 0.3 + 0.5


class TestSpanEvents:
    """The server span carries one "cache" event per part not served by a live call."""

    async def test_cache_events(self, aiohttp_client: Any, mocks: Mocks) -> None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        app = create_app(Settings.from_env(mocks.env()), tracer_provider=provider)
        bff = await aiohttp_client(app)
        await get_answer(bff)
        exporter.clear()
        await get_answer(bff)
        (server,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
        events = {
            (e.attributes or {}).get("bff.part"): (e.attributes or {}).get("bff.source")
            for e in server.events
            if e.name == "cache"
        }
        assert events == dict.fromkeys(KINDS, "cache")
