"""The part cache's Redis tier behind whole BFF apps: shared between instances, and a Redis
that dies mid-run costs no answer."""

from __future__ import annotations

import asyncio
import time

from bff_support import KINDS, MakeBff, Mocks
from cache_support import RedisServer


async def calls(mocks: Mocks) -> dict[str, int]:
    return {kind: await mocks.requests(kind) for kind in KINDS}


class TestSharedBetweenInstances:
    """Two BFF apps on one redis-server: what the first fetched, the second serves from Redis."""

    async def test_second_instance_makes_no_call(
        self, make_bff: MakeBff, mocks: Mocks, redis_server: RedisServer
    ) -> None:
        # A generous Redis timeout: this pins the sharing, not how fast a busy machine answers
        # (the default 5 ms lookup bound turns a slow answer into a miss, by design).
        tier = {"cache.redis_timeout_s": 0.5}
        first = await make_bff(tier, BFF_REDIS_URL=redis_server.url)
        second = await make_bff(tier, BFF_REDIS_URL=redis_server.url)
        async with first.get("/product-details/SHARED1") as resp:
            assert resp.status == 200
            expected = await resp.json()
        await asyncio.sleep(0.5)  # the Redis writes go out after the answer
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
