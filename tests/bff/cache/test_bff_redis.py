"""The part cache's Redis tier behind whole BFF apps: shared between instances, and a Redis
that dies mid-run costs no answer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import coredis
from bff_support import KINDS, BffClient, MakeBff, Mocks, server_timing
from cache_support import RedisServer

# A generous Redis timeout where a test pins what is shared, not how fast a busy machine
# answers (the default 5 ms lookup bound turns a slow answer into a miss, by design).
SLOW_REDIS_OK = {"cache.redis_timeout_s": 0.5}


async def calls(mocks: Mocks) -> dict[str, int]:
    return {kind: await mocks.requests(kind) for kind in KINDS}


async def written(redis_server: RedisServer) -> None:
    """Until the writes an answer sent out have landed: Redis holds keys, and no more arrive
    between two looks 50 ms apart (bounded)."""
    client = coredis.Redis.from_url(redis_server.url)
    try:
        async with asyncio.timeout(5):
            size = 0
            while True:
                before, size = size, await client.dbsize()
                if size and size == before:
                    return
                await asyncio.sleep(0.05)
    finally:
        client.connection_pool.disconnect()


class TestSharedBetweenInstances:
    """Two BFF apps on one redis-server: what the first fetched, the second serves from Redis."""

    async def test_second_instance_makes_no_call(
        self, make_bff: MakeBff, mocks: Mocks, redis_server: RedisServer
    ) -> None:
        first = await make_bff(SLOW_REDIS_OK, BFF_REDIS_URL=redis_server.url)
        second = await make_bff(SLOW_REDIS_OK, BFF_REDIS_URL=redis_server.url)
        async with first.get("/product-details/SHARED1") as resp:
            assert resp.status == 200
            expected = await resp.json()
        await written(redis_server)  # the Redis writes go out after the answer
        before = await calls(mocks)
        async with second.get("/product-details/SHARED1") as resp:
            assert resp.status == 200
            body = await resp.json()
        assert await calls(mocks) == before
        assert body == expected

    async def test_without_redis_the_second_instance_calls(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        first = await make_bff()
        second = await make_bff()
        async with first.get("/product-details/SHARED2") as resp:
            assert resp.status == 200
        before = await calls(mocks)
        async with second.get("/product-details/SHARED2") as resp:
            assert resp.status == 200
        assert await calls(mocks) == {k: v + 1 for k, v in before.items()}


class TestStaleAcrossInstances:
    """A copy one instance stored serves another instance's request when the service fails,
    within the copy's stale-if-error window, and not past it."""

    async def stored_by_a_then_broken(
        self, make_bff: MakeBff, mocks: Mocks, redis_server: RedisServer, window_s: int
    ) -> tuple[Any, BffClient]:
        """Instance A fetches STALE (a product stale at once, `window_s` of stale-if-error)
        and stores it; then the product service fails every call. (A's body, instance B.)"""
        cache_control = f"max-age=0, stale-if-error={window_s}"
        await mocks.faults("product", cache_control=cache_control)
        a, b = [await make_bff(SLOW_REDIS_OK, BFF_REDIS_URL=redis_server.url) for _ in "AB"]
        async with a.get("/product-details/STALE") as resp:
            assert resp.status == 200
            fetched = await resp.json()
        await written(redis_server)
        await mocks.faults("product", error_rate=1, cache_control=cache_control)
        return fetched, b

    async def test_within_the_window_the_other_instance_serves_it(
        self, make_bff: MakeBff, mocks: Mocks, redis_server: RedisServer
    ) -> None:
        fetched, b = await self.stored_by_a_then_broken(make_bff, mocks, redis_server, 600)
        before = await mocks.requests("product")
        async with b.get("/product-details/STALE") as resp:
            assert resp.status == 200
            body = await resp.json()
            timing = server_timing(resp.headers["Server-Timing"])
        assert await mocks.requests("product") > before, "B asked the service first"
        assert body["product"] == fetched["product"]
        assert set(body["stale"]) == {"product"}
        assert body["degraded"] == {}
        assert timing["product"]["desc"] == "stale"

    async def test_past_the_window_the_failure_stands(
        self, make_bff: MakeBff, mocks: Mocks, redis_server: RedisServer
    ) -> None:
        _, b = await self.stored_by_a_then_broken(make_bff, mocks, redis_server, 1)
        await asyncio.sleep(2.1)  # the window itself is time: past it (ages are whole seconds)
        async with b.get("/product-details/STALE") as resp:
            assert resp.status == 502


class TestRedisDies:
    """Redis killed mid-run: every request is still answered, complete, within the deadline."""

    async def test_answers_go_on(
        self, make_bff: MakeBff, mocks: Mocks, redis_server: RedisServer
    ) -> None:
        bff = await make_bff(BFF_REDIS_URL=redis_server.url, BFF_DEADLINE_MS=500)
        for i in range(10):
            async with bff.get(f"/product-details/LIVE{i}") as resp:
                assert resp.status == 200
        redis_server.kill()
        for i in range(30):
            started = time.perf_counter()
            async with bff.get(f"/product-details/DEAD{i}") as resp:
                assert resp.status == 200
                body = await resp.json()
            assert body["degraded"] == {}
            assert time.perf_counter() - started < 0.5 + 0.5
