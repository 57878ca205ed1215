"""The part cache's Redis tier, shared by instances: against a real redis-server, what one
tier writes another reads, and every failure is a quick miss; then part caches on one Redis
(what one instance stored the next one serves, a private copy stays with its identity);
then whole BFF apps: shared between instances, stale copies served across instances within
their stale-if-error window, and a Redis that dies mid-run costs no answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import coredis
import pytest
from bff_support import BffClient, MakeBff, Mocks, server_timing
from cache_support import (
    ALICE,
    BOB,
    PRODUCT_CC,
    Clock,
    RedisServer,
    free_port,
    junk_server,
    look,
    req,
    store,
)
from prometheus_client import REGISTRY

from bff.cache.redis_tier import (
    FAIL_MAX,
    MAX_PENDING_WRITES,
    PAUSE_S,
    WRITE_TIMEOUT_FACTOR,
    RedisTier,
)
from bff.cache.store import (
    FRESH,
    MISS,
    PartCache,
    open_part_cache,
)
from bff.settings.cache import CacheSettings

TIMEOUT_S = 0.05  # wide for a loaded test machine; production uses a few ms


# What "within the bound" allows on top of it: a loaded machine's late timers, far less than
# the next figure a broken bound would give (the writes' 10 x TIMEOUT_S, or no bound at all).
LATE_S = 0.1


def miss_within(started: float, bound_s: float) -> None:
    took = time.monotonic() - started
    assert took < bound_s + LATE_S, f"{took:.3f} s for a lookup bounded at {bound_s} s"


@pytest.fixture
async def tier(redis_server: RedisServer) -> AsyncIterator[RedisTier]:
    t = RedisTier(redis_server.url, timeout_s=TIMEOUT_S, prefix="test:")
    try:
        yield t
    finally:
        await t.close()


class TestSharedValues:
    """What one tier writes another reads; values expire with their TTL."""

    async def test_put_then_get_from_another_client(
        self, tier: RedisTier, redis_server: RedisServer
    ) -> None:
        tier.put_later("k", b"value", ttl_s=30)
        await tier.flush()
        other = RedisTier(redis_server.url, timeout_s=TIMEOUT_S, prefix="test:")
        try:
            assert await other.get("k") == b"value"
            assert await other.get("absent") is None
        finally:
            await other.close()

    async def test_ttl(self, tier: RedisTier) -> None:
        tier.put_later("short", b"v", ttl_s=0.05)
        await tier.flush()
        await asyncio.sleep(0.2)
        assert await tier.get("short") is None

    async def test_drop(self, tier: RedisTier) -> None:
        tier.put_later("k", b"v", ttl_s=30)
        await tier.flush()
        tier.drop_later("k")
        await tier.flush()
        assert await tier.get("k") is None

    async def test_a_lookup_cut_short_never_leaks_into_the_next(self, tier: RedisTier) -> None:
        """A lookup cancelled mid-flight (the request's deadline) leaves no reply behind on
        the pooled connection for the next lookup to read as its own."""
        for i in range(20):
            tier.put_later(f"k{i}", f"v{i}".encode() * 2000, ttl_s=30)
        await tier.flush()
        cut = 0
        for n in range(200):
            i = n % 20
            if n % 2 == 0:
                try:
                    await asyncio.wait_for(tier.get(f"k{i}"), 0.00002)
                except TimeoutError:
                    cut += 1
            else:
                assert await tier.get(f"k{i}") == f"v{i}".encode() * 2000
        assert cut > 0


class TestWrites:
    """Writes go out in the background, bounded in number and in time, with the TTL asked."""

    async def test_a_ttl_in_whole_milliseconds_rounded_up(
        self, tier: RedisTier, redis_server: RedisServer
    ) -> None:
        tier.put_later("k", b"v", ttl_s=2.0001)
        tier.put_later("half", b"v", ttl_s=0.5)
        tier.put_later("gone", b"v", ttl_s=0)  # nothing left to keep: not written
        await tier.flush()
        raw = coredis.Redis.from_url(redis_server.url)
        pttl = await raw.pttl("test:k")
        assert 1900 < pttl <= 2001, pttl
        assert 400 < await raw.pttl("test:half") <= 500
        assert await raw.exists(["test:gone"]) == 0

    async def test_at_most_so_many_writes_wait_on_a_stopped_redis(
        self, tier: RedisTier, redis_server: RedisServer
    ) -> None:
        with redis_server.stopped():
            for i in range(MAX_PENDING_WRITES + 10):
                tier.put_later(f"k{i}", b"v", ttl_s=30)
            assert len(tier._writes) == MAX_PENDING_WRITES
            started = time.monotonic()
            await tier.flush()
            # Each write gives up at its bound (10 x the lookup's, 0.5 s here; 256 of them
            # at once take a little longer), not when Redis comes back.
            took = time.monotonic() - started
        assert took < 4 * TIMEOUT_S * WRITE_TIMEOUT_FACTOR, took
        assert len(tier._writes) == 0


class TestFailures:
    """A dead, killed or garbage-speaking Redis is a miss within the timeout, then skipped."""

    async def test_redis_killed_mid_run(self, redis_server: RedisServer) -> None:
        errors: list[str] = []
        tier = RedisTier(redis_server.url, timeout_s=TIMEOUT_S, on_error=errors.append)
        try:
            tier.put_later("k", b"v", ttl_s=30)
            await tier.flush()
            assert await tier.get("k") == b"v"
            redis_server.kill()
            for _ in range(FAIL_MAX + 5):
                started = time.monotonic()
                assert await tier.get("k") is None
                miss_within(started, TIMEOUT_S)
            assert len(errors) == FAIL_MAX  # then skipped: no more attempts
            assert not tier.available
        finally:
            await tier.close()

    async def test_comes_back_after_the_pause(self, redis_server: RedisServer) -> None:
        clock = Clock(1000.0)
        tier = RedisTier(redis_server.url, timeout_s=TIMEOUT_S, clock=clock)
        try:
            redis_server.kill()
            for _ in range(FAIL_MAX):
                assert await tier.get("k") is None
            assert not tier.available
            redis_server.start()
            clock.now += PAUSE_S
            assert tier.available
            tier.put_later("k", b"back", ttl_s=30)
            await tier.flush()
            assert await tier.get("k") == b"back"
        finally:
            await tier.close()

    async def test_nothing_listening(self) -> None:
        """A refused connection: a miss at once, the write dropped, both counted."""
        errors: list[str] = []
        tier = RedisTier(
            f"redis://127.0.0.1:{free_port()}", timeout_s=TIMEOUT_S, on_error=errors.append
        )
        try:
            started = time.monotonic()
            assert await tier.get("k") is None
            miss_within(started, TIMEOUT_S)
            tier.put_later("k", b"v", ttl_s=30)
            await tier.flush()
            assert errors == ["get", "set"]
            assert tier.available  # two errors: not yet skipped
        finally:
            await tier.close()

    async def test_a_silent_redis_is_a_miss_within_the_default_bound(
        self, redis_server: RedisServer
    ) -> None:
        """A stopped redis-server (SIGSTOP: the kernel accepts, nothing answers), behind a tier
        with the default bound: a miss after 5 ms, as docs/caching.md promises."""
        bound_s = CacheSettings().redis_timeout_s
        assert bound_s == 0.005
        tier = RedisTier(redis_server.url, timeout_s=bound_s)
        try:
            assert await tier.get("warm") is None  # connected, while Redis still answers
            with redis_server.stopped():
                started = time.monotonic()
                assert await tier.get("k") is None
                miss_within(started, bound_s)
        finally:
            await tier.close()

    async def test_a_silent_redis_costs_a_lookup_its_own_bound_not_a_writes(
        self, redis_server: RedisServer
    ) -> None:
        """The test above allows a loaded machine 100 ms of lateness: more than the 50 ms a
        write may take (10 x 5 ms), so a lookup bounded like a write would pass it. The
        quickest of five lookups into a stopped Redis shows which bound is in force (a
        success between two keeps the tier from pausing, which would make a miss free)."""
        bound_s = CacheSettings().redis_timeout_s
        tier = RedisTier(redis_server.url, timeout_s=bound_s)
        took = []
        try:
            for _ in range(5):
                assert await tier.get("warm") is None  # answered: the error count starts again
                with redis_server.stopped():
                    started = time.monotonic()
                    assert await tier.get("k") is None
                    took.append(time.monotonic() - started)
        finally:
            await tier.close()
        assert min(took) < bound_s * WRITE_TIMEOUT_FACTOR / 2, took

    async def test_errors_among_successes_never_pause_the_tier(
        self, tier: RedisTier, redis_server: RedisServer
    ) -> None:
        """Twice as many errors as it takes to pause, but never FAIL_MAX in a row: each
        success starts the count again, so Redis is still asked."""
        tier.put_later("k", b"v", ttl_s=30)
        await tier.flush()
        for _ in range(2 * FAIL_MAX):
            with redis_server.stopped():
                assert await tier.get("k") is None  # late: an error
            assert await tier.get("k") == b"v"
        assert tier.available

    @pytest.mark.parametrize(
        "reply",
        [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"$5\r\nab", b"\x00\xff" * 100, b"-ERR no\r\n", b""],
        ids=["http", "truncated", "binary", "error", "silent"],
    )
    async def test_garbage_server_is_a_miss(self, reply: bytes) -> None:
        server = await junk_server(reply)
        port = server.sockets[0].getsockname()[1]
        tier = RedisTier(f"redis://127.0.0.1:{port}", timeout_s=TIMEOUT_S)
        try:
            started = time.monotonic()
            assert await tier.get("k") is None
            miss_within(started, TIMEOUT_S)
        finally:
            await tier.close()
            server.close()
            await server.wait_closed()

    async def test_a_value_of_the_wrong_type_is_a_miss(
        self, tier: RedisTier, redis_server: RedisServer
    ) -> None:
        import coredis

        raw = coredis.Redis.from_url(redis_server.url)
        await raw.lpush("test:list", ["x"])
        raw.connection_pool.disconnect()
        assert await tier.get("list") is None


@pytest.fixture
async def two_instances(
    redis_server: RedisServer, clock: Clock
) -> AsyncIterator[tuple[PartCache, PartCache]]:
    def instance() -> PartCache:
        tier = RedisTier(redis_server.url, timeout_s=0.05)
        return PartCache(CacheSettings(), redis=tier, clock=clock)

    first, second = instance(), instance()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


class TestRedisTier:
    """With Redis, what one instance stored the next one serves; a dead Redis is a miss."""

    async def test_second_instance_hits(self, two_instances: tuple[PartCache, PartCache]) -> None:
        first, second = two_instances
        r = req(Accept_Language="fr")
        store(
            first,
            r,
            await look(first, r),
            b"shared",
            Cache_Control=PRODUCT_CC,
            Vary="Accept-Language",
            ETag='"s"',
        )
        assert first._redis is not None
        await first._redis.flush()
        hit = await look(second, req(Accept_Language="fr"))
        assert hit.verdict == FRESH
        assert hit.entry is not None
        assert hit.entry.body == b"shared"
        assert hit.entry.meta.etag == '"s"'
        assert (await look(second, req(Accept_Language="de"))).verdict == MISS

    async def test_private_copy_stays_with_its_identity_across_instances(
        self, two_instances: tuple[PartCache, PartCache]
    ) -> None:
        first, second = two_instances
        alice = req(**ALICE)
        store(first, alice, await look(first, alice), Cache_Control="private, max-age=60")
        assert first._redis is not None
        await first._redis.flush()
        assert (await look(second, req(**BOB))).verdict == MISS
        assert (await look(second, req(**ALICE))).verdict == FRESH

    async def test_uncacheable_key_skips_redis_for_a_while(
        self, two_instances: tuple[PartCache, PartCache], clock: Clock
    ) -> None:
        first, second = two_instances
        assert first._redis is not None
        assert second._redis is not None
        r = req()
        store(first, r, await look(first, r), Cache_Control="no-store")
        await first._redis.flush()
        gets = 0
        real_get = second._redis.get

        async def counting_get(key: str) -> bytes | None:
            nonlocal gets
            gets += 1
            return await real_get(key)

        second._redis.get = counting_get  # type: ignore[method-assign]
        assert (await look(second, req())).verdict == MISS
        assert gets == 1  # learned from Redis that the key is uncacheable
        for _ in range(3):
            assert (await look(second, req())).verdict == MISS
        assert gets == 1
        clock.advance(6)
        await look(second, req())
        assert gets > 1  # asks again once the pause is over
        # And a cacheable answer is served again at once.
        store(second, r, await look(second, r), Cache_Control=PRODUCT_CC)
        assert (await look(second, req())).verdict == FRESH

    async def test_redis_killed(
        self, two_instances: tuple[PartCache, PartCache], redis_server: RedisServer
    ) -> None:
        first, second = two_instances
        r = req()
        store(first, r, await look(first, r), Cache_Control=PRODUCT_CC)
        redis_server.kill()
        assert (await look(first, req())).verdict == FRESH  # memory still serves
        for _ in range(5):
            assert (await look(second, req())).verdict == MISS


class TestOpen:
    """`open_part_cache` builds the Redis tier from the settings and counts its errors."""

    async def test_dead_redis_is_counted_and_a_miss(self) -> None:
        cache = open_part_cache(CacheSettings(), f"redis://127.0.0.1:{free_port()}")
        assert cache is not None
        before = REGISTRY.get_sample_value("bff_cache_redis_errors_total", {"op": "get"}) or 0
        try:
            assert (await look(cache, req())).verdict == MISS
        finally:
            await cache.close()
        after = REGISTRY.get_sample_value("bff_cache_redis_errors_total", {"op": "get"})
        assert after == before + 1


# A generous Redis timeout where a test pins what is shared, not how fast a busy machine
# answers (the default 5 ms lookup bound turns a slow answer into a miss, by design).
SLOW_REDIS_OK = {"cache.redis_timeout_s": 0.5}


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
            cached_for = max_age(resp.headers["Cache-Control"])
        await written(redis_server)  # the Redis writes go out after the answer
        before = await mocks.calls()
        async with second.get("/product-details/SHARED1") as resp:
            assert resp.status == 200
            body = await resp.json()
            timing = server_timing(resp.headers["Server-Timing"])
            # As fresh as the copies in Redis are, and shareable as they were.
            assert resp.headers["Cache-Control"].startswith("public, ")
            assert cached_for - 1 <= max_age(resp.headers["Cache-Control"]) <= cached_for
        assert await mocks.calls() == before
        assert body == expected
        for part in ("product", "reviews", "inventory"):
            assert timing[part]["desc"] == "cache", timing
            assert 0 <= float(timing[part]["dur"]) < 100, timing

    async def test_without_redis_the_second_instance_calls(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        first = await make_bff()
        second = await make_bff()
        async with first.get("/product-details/SHARED2") as resp:
            assert resp.status == 200
        before = await mocks.calls()
        async with second.get("/product-details/SHARED2") as resp:
            assert resp.status == 200
        assert await mocks.calls() == {k: v + 1 for k, v in before.items()}


def max_age(cache_control: str) -> int:
    return int(cache_control.rsplit("max-age=", 1)[1].split(",")[0])


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
