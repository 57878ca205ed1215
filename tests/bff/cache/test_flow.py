"""One part through the cache against the real mock services over loopback (counted by
/__stats): fresh copies, 304s, stale-while-revalidate, stale-if-error, coalescing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Request
from cache_support import Clock
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient

from bff.cache import PartCache, PartRequest
from bff.cache.flow import Fetched, Served, Source, serve
from bff.errors import BadResponse, DownstreamError, DownstreamTimeout, DownstreamUnavailable
from bff.settings.cache import CacheSettings
from mock_services import ServiceKind, create_service_app
from mock_services.catalogue import inventory_for, product_for, reviews_for

Mock = TestClient[Request, Any]
PATHS = {"product": "/products/{}", "reviews": "/reviews/{}", "inventory": "/inventory/{}"}


class Part:
    """A mock service and the two functions the client path would supply."""

    def __init__(self, kind: ServiceKind, mock: Mock) -> None:
        self.kind = kind
        self.mock = mock
        self.sent: list[str | None] = []

    async def call(self, pid: str, etag: str | None) -> Fetched:
        self.sent.append(etag)
        headers = {"If-None-Match": etag} if etag else {}
        try:
            async with self.mock.get(PATHS[self.kind].format(pid), headers=headers) as resp:
                body = await resp.read()
        except aiohttp.ClientError as exc:
            raise DownstreamUnavailable(self.kind, str(exc)) from None
        if resp.status not in (200, 304):
            raise DownstreamUnavailable(self.kind, f"status {resp.status}")
        # These tests move the cache's clock, not the mock's: its Date (real time) would age
        # every copy by the time skipped. Date's own rules are pinned in test_policy.
        headers = CIMultiDict(resp.headers)
        headers.popall("Date", None)
        return Fetched(resp.status, headers, body)

    def decode(self, body: bytes) -> Any:
        try:
            return msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise BadResponse(self.kind, "not JSON") from None

    async def requests(self) -> int:
        async with self.mock.get("/__stats") as resp:
            count: int = (await resp.json())["requests"]
            return count

    async def faults(self, **faults: Any) -> None:
        async with self.mock.put("/__faults", json=faults) as resp:
            assert resp.status == 200

    async def serve(self, cache: PartCache, pid: str = "P001", **kw: Any) -> Served[Any]:
        """`timeout_s` bounds the call too, as the real client's deadline does; the cache's
        wait for another caller's call ends at the same instant."""
        req = PartRequest.of(self.kind, pid, {})
        timeout_s = kw.pop("timeout_s", None)
        if timeout_s is not None:
            kw["until"] = asyncio.get_running_loop().time() + timeout_s

        async def call(etag: str | None) -> Fetched:
            try:
                async with asyncio.timeout(timeout_s):
                    return await self.call(pid, etag)
            except TimeoutError:
                raise DownstreamTimeout(self.kind, "deadline") from None

        return await serve(cache, req, call, self.decode, **kw)


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())  # the mocks' Date header is real time


@pytest.fixture
def cache(clock: Clock) -> PartCache:
    return PartCache(CacheSettings(), clock=clock)


@pytest.fixture
async def part(aiohttp_client: AiohttpClient, request: pytest.FixtureRequest) -> Part:
    kind: ServiceKind = getattr(request, "param", "product")
    return Part(kind, await aiohttp_client(create_service_app(kind, latency_scale=0)))


class TestFreshAndRevalidated:
    """A fresh copy makes no call; an expired one is revalidated and a 304 renews it."""

    async def test_second_request_makes_no_call(self, cache: PartCache, part: Part) -> None:
        first = await part.serve(cache)
        second = await part.serve(cache)
        assert first.source is Source.LIVE
        assert second.source is Source.CACHE
        assert second.value == first.value == product_for("P001")
        assert await part.requests() == 1

    @pytest.mark.parametrize("part", ["inventory"], indirect=True)
    async def test_304_renews_the_copy(self, cache: PartCache, part: Part, clock: Clock) -> None:
        first = await part.serve(cache)
        clock.advance(3)  # inventory: max-age=2, no stale-while-revalidate
        again = await part.serve(cache)
        assert again.source is Source.CACHE
        assert again.value == inventory_for("P001")
        assert first.entry is not None
        assert part.sent == [None, first.entry.meta.etag]
        assert await part.requests() == 2  # the 304 is a request
        assert again.fresh_for(clock.now) == 2
        assert (await part.serve(cache)).source is Source.CACHE
        assert await part.requests() == 2

    async def test_stale_while_revalidate_serves_and_refreshes_once(
        self, cache: PartCache, part: Part, clock: Clock
    ) -> None:
        await part.serve(cache)
        clock.advance(70)  # product: max-age=60, stale-while-revalidate=30
        answers = await asyncio.gather(*(part.serve(cache) for _ in range(20)))
        assert {a.source for a in answers} == {Source.CACHE}
        await asyncio.sleep(0.05)  # the one background refresh
        assert await part.requests() == 2
        assert (await part.serve(cache)).fresh_for(clock.now) > 50

    async def test_background_refresh_uses_its_own_call(
        self, cache: PartCache, part: Part, clock: Clock
    ) -> None:
        await part.serve(cache)
        clock.advance(70)
        refreshed: list[str | None] = []

        async def refresh(etag: str | None) -> Fetched:
            refreshed.append(etag)
            return await part.call("P001", etag)

        req = PartRequest.of("product", "P001", {})

        async def request_call(etag: str | None) -> Fetched:
            raise AssertionError("the request's own call is not used for the refresh")

        served = await serve(cache, req, request_call, part.decode, refresh=refresh)
        assert served.source is Source.CACHE
        await asyncio.sleep(0.05)
        assert len(refreshed) == 1
        assert refreshed[0] is not None  # conditional: the copy has an ETag


class TestStaleIfError:
    """A failed call within the copy's stale-if-error window is answered with the copy."""

    @pytest.mark.parametrize("part", ["product", "reviews"], indirect=True)
    async def test_stale_copy(self, cache: PartCache, part: Part, clock: Clock) -> None:
        await part.serve(cache)
        await part.faults(error_rate=1.0, latency_ms=0)
        clock.advance(200)
        served = await part.serve(cache)
        assert served.source is Source.STALE
        assert served.age_s in (200, 201)
        expected = product_for("P001") if part.kind == "product" else reviews_for("P001")
        assert served.value == expected

    async def test_past_the_window_the_error_stands(
        self, cache: PartCache, part: Part, clock: Clock
    ) -> None:
        await part.serve(cache)
        await part.faults(error_rate=1.0, latency_ms=0)
        clock.advance(60 + 600 + 1)
        with pytest.raises(DownstreamUnavailable):
            await part.serve(cache)

    async def test_a_slow_service_past_our_wait(
        self, cache: PartCache, part: Part, clock: Clock
    ) -> None:
        await part.serve(cache)
        await part.faults(latency_ms=2000)
        clock.advance(100)
        served = await part.serve(cache, timeout_s=0.05)  # the call's bound and the wait's
        assert served.source is Source.STALE

    async def test_not_found_is_not_an_error(self, cache: PartCache, part: Part) -> None:
        class NotFound(DownstreamError):
            reason = "not_found"

        async def call(etag: str | None) -> Fetched:
            raise NotFound("product", "404")

        req = PartRequest.of("product", "P001", {})
        await part.serve(cache)
        cache_req_lookup = await cache.lookup(req)
        cache.drop(cache_req_lookup)
        with pytest.raises(NotFound):
            await serve(cache, req, call, part.decode)


class TestBadCopies:
    """A stored body that no longer decodes is dropped and fetched again."""

    async def test_undecodable_copy(self, cache: PartCache, part: Part) -> None:
        await part.serve(cache)
        calls = 0

        def picky(body: bytes) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise BadResponse("product", "schema changed")
            return part.decode(body)

        req = PartRequest.of("product", "P001", {})
        served = await serve(cache, req, lambda etag: part.call("P001", etag), picky)
        assert served.source is Source.LIVE
        assert part.sent[-1] is None  # fetched afresh, not revalidated
        assert await part.requests() == 2


class TestHerd:
    """500 concurrent requests for one cold id make exactly one call."""

    @pytest.mark.parametrize("part", ["reviews"], indirect=True)
    async def test_one_call(self, cache: PartCache, part: Part) -> None:
        await part.faults(latency_ms=50)
        answers = await asyncio.gather(*(part.serve(cache, "P042") for _ in range(500)))
        assert await part.requests() == 1
        sources = [a.source for a in answers]
        assert sources.count(Source.LIVE) == 1
        assert sources.count(Source.COALESCED) == 499
        assert all(a.value == reviews_for("P042") for a in answers)
