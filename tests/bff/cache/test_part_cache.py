"""PartCache: the shared-cache rules as the client path sees them, with a clock we move."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from cache_support import Clock, RedisServer, free_port, headers
from prometheus_client import REGISTRY

from bff.cache import Lookup, PartCache, PartRequest, Verdict, open_part_cache
from bff.cache.entry import Entry
from bff.cache.redis_tier import RedisTier
from bff.settings.cache import CacheSettings

PRODUCT_CC = "max-age=60, stale-while-revalidate=30, stale-if-error=600"
ALICE = {"Authorization": "Bearer alice"}
BOB = {"Authorization": "Bearer bob"}


def req(pid: str = "P001", service: str = "product", **fields: str) -> PartRequest:
    return PartRequest.of(service, pid, {k.replace("_", "-"): v for k, v in fields.items()})


def store(
    cache: PartCache, r: PartRequest, lookup: Lookup, body: bytes = b"{}", **h: str
) -> Entry | None:
    return cache.store(r, lookup, headers(**h), body)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> PartCache:
    return PartCache(CacheSettings(), clock=clock)


def counted(service: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "bff_cache_lookups_total", {"service": service, "result": result}
    )
    return value or 0.0


class TestFreshness:
    """Fresh: no call; stale within stale-while-revalidate: served, refreshed once; then
    revalidated with If-None-Match, a 304 renewing the copy."""

    async def test_miss_then_hit(self, cache: PartCache, clock: Clock) -> None:
        r = req()
        miss = await cache.lookup(r)
        assert miss.verdict is Verdict.MISS
        store(cache, r, miss, b'{"id":"P001"}', Cache_Control=PRODUCT_CC, ETag='"e1"')
        hit = await cache.lookup(req())
        assert hit.verdict is Verdict.FRESH
        assert hit.entry is not None
        assert hit.entry.body == b'{"id":"P001"}'
        clock.advance(59)
        assert (await cache.lookup(r)).verdict is Verdict.FRESH

    async def test_stale_while_revalidate_then_revalidate(
        self, cache: PartCache, clock: Clock
    ) -> None:
        r = req()
        store(cache, r, await cache.lookup(r), Cache_Control=PRODUCT_CC, ETag='"e1"')
        clock.advance(61)
        stale = await cache.lookup(r)
        assert stale.verdict is Verdict.STALE
        clock.advance(30)
        expired = await cache.lookup(r)
        assert expired.verdict is Verdict.REVALIDATE
        assert expired.etag == '"e1"'

    async def test_one_background_refresh_per_key(self, cache: PartCache, clock: Clock) -> None:
        r = req()
        store(cache, r, await cache.lookup(r), Cache_Control=PRODUCT_CC)
        clock.advance(70)
        stale = await cache.lookup(r)
        gate = asyncio.Event()
        calls = 0

        async def refresh() -> None:
            nonlocal calls
            calls += 1
            await gate.wait()
            raise ConnectionError("a failed refresh leaves the copy as it was")

        assert cache.refresh_in_background(stale, refresh)
        assert not cache.refresh_in_background(await cache.lookup(r), refresh)
        gate.set()
        await asyncio.sleep(0.01)
        assert calls == 1
        assert (await cache.lookup(r)).verdict is Verdict.STALE
        assert cache.refresh_in_background(stale, refresh)  # the first one is over
        await cache.close()

    async def test_304_renews_the_copy(self, cache: PartCache, clock: Clock) -> None:
        r = req()
        store(cache, r, await cache.lookup(r), b"body", Cache_Control="max-age=10", ETag='"e1"')
        clock.advance(11)
        expired = await cache.lookup(r)
        before = counted("product", "revalidated")
        renewed = cache.revalidated(r, expired, headers(ETag='"e1"', Cache_Control="max-age=20"))
        assert renewed is not None
        assert renewed.body == b"body"
        assert counted("product", "revalidated") == before + 1
        clock.advance(19)
        assert (await cache.lookup(r)).verdict is Verdict.FRESH

    async def test_304_without_cache_control_keeps_the_lifetimes(
        self, cache: PartCache, clock: Clock
    ) -> None:
        r = req()
        store(
            cache,
            r,
            await cache.lookup(r),
            Cache_Control="max-age=10, stale-if-error=5",
            ETag='"e1"',
        )
        clock.advance(100)
        renewed = cache.revalidated(r, await cache.lookup(r), headers())
        assert renewed is not None
        assert renewed.meta.fresh_until == clock.now + 10
        assert renewed.meta.sie_until == clock.now + 15

    async def test_304_for_another_tag_is_not_ours(self, cache: PartCache, clock: Clock) -> None:
        r = req()
        store(cache, r, await cache.lookup(r), Cache_Control="max-age=10", ETag='"e1"')
        clock.advance(11)
        assert cache.revalidated(r, await cache.lookup(r), headers(ETag='"e2"')) is None
        assert (await cache.lookup(r)).verdict is Verdict.MISS

    async def test_304_saying_no_store_answers_once_then_forgets(
        self, cache: PartCache, clock: Clock
    ) -> None:
        r = req()
        store(cache, r, await cache.lookup(r), b"body", Cache_Control="max-age=10", ETag='"e1"')
        clock.advance(11)
        confirmed = cache.revalidated(r, await cache.lookup(r), headers(Cache_Control="no-store"))
        assert confirmed is not None
        assert confirmed.body == b"body"
        assert (await cache.lookup(r)).verdict is Verdict.MISS

    async def test_no_store_forgets_the_old_copy(self, cache: PartCache, clock: Clock) -> None:
        r = req()
        store(cache, r, await cache.lookup(r), Cache_Control=PRODUCT_CC)
        clock.advance(100)
        stale = await cache.lookup(r)
        assert store(cache, r, stale, Cache_Control="no-store") is None
        assert (await cache.lookup(r)).verdict is Verdict.MISS

    async def test_drop(self, cache: PartCache) -> None:
        r = req()
        store(cache, r, await cache.lookup(r), b"not json any more", Cache_Control=PRODUCT_CC)
        cache.drop(await cache.lookup(r))
        assert (await cache.lookup(r)).verdict is Verdict.MISS


class TestStaleIfError:
    """A failed call may serve the copy within its stale-if-error window, with its age."""

    async def test_within_and_past_the_window(self, cache: PartCache, clock: Clock) -> None:
        r = req()
        store(
            cache,
            r,
            await cache.lookup(r),
            b"old",
            Cache_Control="max-age=2, stale-if-error=60",
            Age="1",
        )
        clock.advance(30)
        copy = cache.stale_if_error(r, await cache.lookup(r))
        assert copy is not None
        assert copy.body == b"old"
        assert copy.age_s == 31
        clock.advance(31)
        assert cache.stale_if_error(r, await cache.lookup(r)) is None

    async def test_must_revalidate_is_never_served_stale(
        self, cache: PartCache, clock: Clock
    ) -> None:
        r = req()
        store(
            cache,
            r,
            await cache.lookup(r),
            Cache_Control="max-age=2, must-revalidate, stale-if-error=60",
        )
        clock.advance(3)
        assert cache.stale_if_error(r, await cache.lookup(r)) is None


class TestWhoIsServed:
    """`private` and identified requests stay with their identity; Vary splits the key."""

    async def test_private_never_reaches_another_identity(self, cache: PartCache) -> None:
        alice = req(**ALICE)
        store(
            cache, alice, await cache.lookup(alice), b"alice's", Cache_Control="private, max-age=60"
        )
        assert (await cache.lookup(req(**ALICE))).verdict is Verdict.FRESH
        assert (await cache.lookup(req(**BOB))).verdict is Verdict.MISS
        assert (await cache.lookup(req())).verdict is Verdict.MISS

    async def test_private_without_identity_is_not_stored(self, cache: PartCache) -> None:
        anon = req()
        assert (
            store(cache, anon, await cache.lookup(anon), Cache_Control="private, max-age=60")
            is None
        )
        assert (await cache.lookup(req())).verdict is Verdict.MISS

    async def test_subject_is_an_identity(self, cache: PartCache) -> None:
        sub = req(X_User_ID="u1")
        store(cache, sub, await cache.lookup(sub), Cache_Control="max-age=60")
        assert (await cache.lookup(req(X_User_ID="u1"))).verdict is Verdict.FRESH
        assert (await cache.lookup(req(X_User_ID="u2"))).verdict is Verdict.MISS

    @pytest.mark.parametrize(
        ("cc", "shared"),
        [("max-age=60", False), ("public, max-age=60", True), ("s-maxage=60", True)],
    )
    async def test_authorized_request(self, cache: PartCache, cc: str, shared: bool) -> None:
        alice = req(**ALICE)
        store(cache, alice, await cache.lookup(alice), Cache_Control=cc)
        bob = await cache.lookup(req(**BOB))
        assert (bob.verdict is Verdict.FRESH) is shared
        anon = await cache.lookup(req())
        assert (anon.verdict is Verdict.FRESH) is shared

    async def test_vary(self, cache: PartCache) -> None:
        fr = req(Accept_Language="fr")
        store(
            cache,
            fr,
            await cache.lookup(fr),
            b"bonjour",
            Cache_Control=PRODUCT_CC,
            Vary="Accept-Language",
        )
        hit = await cache.lookup(req(Accept_Language="fr"))
        assert hit.verdict is Verdict.FRESH
        assert hit.entry is not None
        assert hit.entry.body == b"bonjour"
        assert (await cache.lookup(req(Accept_Language="de"))).verdict is Verdict.MISS
        assert (await cache.lookup(req())).verdict is Verdict.MISS
        # Headers not named by Vary do not split the key.
        assert (
            await cache.lookup(req(Accept_Language="fr", X_Request_ID="x"))
        ).verdict is Verdict.FRESH

    async def test_vary_star_is_not_stored(self, cache: PartCache) -> None:
        r = req()
        assert store(cache, r, await cache.lookup(r), Cache_Control=PRODUCT_CC, Vary="*") is None

    async def test_services_and_ids_are_separate(self, cache: PartCache) -> None:
        r = req()
        store(cache, r, await cache.lookup(r), Cache_Control=PRODUCT_CC)
        assert (await cache.lookup(req("P002"))).verdict is Verdict.MISS
        assert (await cache.lookup(req(service="reviews"))).verdict is Verdict.MISS


class TestCoalescing:
    """Concurrent callers of one key share one call, never an answer that is not shareable."""

    async def test_herd_on_a_cold_key(self, cache: PartCache) -> None:
        calls = 0

        async def call() -> str:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.01)
            return "answer"

        async def one() -> tuple[str, bool]:
            r = req()
            return await cache.coalesce(r, await cache.lookup(r), call, lambda _: True)

        results = await asyncio.gather(*(one() for _ in range(500)))
        assert calls == 1
        assert sum(joined for _, joined in results) == 499

    async def test_cold_key_keeps_identities_apart(self, cache: PartCache) -> None:
        calls: list[str] = []

        async def one(r: PartRequest) -> str:
            async def call() -> str:
                calls.append(r.identity)
                await asyncio.sleep(0.01)
                return r.identity

            result, _ = await cache.coalesce(r, await cache.lookup(r), call, lambda _: True)
            return result

        a, b = await asyncio.gather(one(req(**ALICE)), one(req(**BOB)))
        assert a != b
        assert len(calls) == 2

    async def test_unshareable_answer_is_not_handed_to_another_identity(
        self, cache: PartCache
    ) -> None:
        anon = req()
        store(cache, anon, await cache.lookup(anon), Cache_Control="max-age=1")  # a shared shape
        results: list[str] = []

        async def one(r: PartRequest, shareable: bool) -> None:
            async def call() -> tuple[str, bool]:
                await asyncio.sleep(0.01)
                return r.identity, shareable

            (who, _), _ = await cache.coalesce(r, await cache.lookup(r), call, lambda t: t[1])
            results.append(who)

        alice, bob = req(**ALICE), req(**BOB)
        await asyncio.gather(one(alice, False), one(bob, False))
        assert sorted(results) == sorted([alice.identity, bob.identity])
        results.clear()
        await asyncio.gather(one(alice, True), one(bob, True))
        assert len(set(results)) == 1  # shareable: one call served both


class TestOff:
    """BFF_CACHE=off: there is no part cache (and so no Redis client) to go through."""

    def test_off_is_no_cache_at_all(self) -> None:
        assert open_part_cache(CacheSettings(enabled=False)) is None
        assert open_part_cache(CacheSettings(enabled=False), "redis://127.0.0.1:1") is None


class TestMetrics:
    """Each decision is counted by service and result."""

    async def test_counted(self, cache: PartCache) -> None:
        r = req(service="inventory")
        before = {k: counted("inventory", k) for k in ("miss", "hit")}
        store(cache, r, await cache.lookup(r), Cache_Control="max-age=2")
        await cache.lookup(r)
        assert counted("inventory", "miss") == before["miss"] + 1
        assert counted("inventory", "hit") == before["hit"] + 1
        assert (REGISTRY.get_sample_value("bff_cache_stored_bytes") or 0) > 0


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
            await first.lookup(r),
            b"shared",
            Cache_Control=PRODUCT_CC,
            Vary="Accept-Language",
            ETag='"s"',
        )
        assert first._redis is not None
        await first._redis.flush()
        hit = await second.lookup(req(Accept_Language="fr"))
        assert hit.verdict is Verdict.FRESH
        assert hit.entry is not None
        assert hit.entry.body == b"shared"
        assert hit.entry.meta.etag == '"s"'
        assert (await second.lookup(req(Accept_Language="de"))).verdict is Verdict.MISS

    async def test_private_copy_stays_with_its_identity_across_instances(
        self, two_instances: tuple[PartCache, PartCache]
    ) -> None:
        first, second = two_instances
        alice = req(**ALICE)
        store(first, alice, await first.lookup(alice), Cache_Control="private, max-age=60")
        assert first._redis is not None
        await first._redis.flush()
        assert (await second.lookup(req(**BOB))).verdict is Verdict.MISS
        assert (await second.lookup(req(**ALICE))).verdict is Verdict.FRESH

    async def test_uncacheable_key_skips_redis_for_a_while(
        self, two_instances: tuple[PartCache, PartCache], clock: Clock
    ) -> None:
        first, second = two_instances
        assert first._redis is not None
        assert second._redis is not None
        r = req()
        store(first, r, await first.lookup(r), Cache_Control="no-store")
        await first._redis.flush()
        gets = 0
        real_get = second._redis.get

        async def counting_get(key: str) -> bytes | None:
            nonlocal gets
            gets += 1
            return await real_get(key)

        second._redis.get = counting_get  # type: ignore[method-assign]
        assert (await second.lookup(req())).verdict is Verdict.MISS
        assert gets == 1  # learned from Redis that the key is uncacheable
        for _ in range(3):
            assert (await second.lookup(req())).verdict is Verdict.MISS
        assert gets == 1
        clock.advance(6)
        await second.lookup(req())
        assert gets > 1  # asks again once the pause is over
        # And a cacheable answer is served again at once.
        store(second, r, await second.lookup(r), Cache_Control=PRODUCT_CC)
        assert (await second.lookup(req())).verdict is Verdict.FRESH

    async def test_redis_killed(
        self, two_instances: tuple[PartCache, PartCache], redis_server: RedisServer
    ) -> None:
        first, second = two_instances
        r = req()
        store(first, r, await first.lookup(r), Cache_Control=PRODUCT_CC)
        redis_server.kill()
        assert (await first.lookup(req())).verdict is Verdict.FRESH  # memory still serves
        for _ in range(5):
            assert (await second.lookup(req())).verdict is Verdict.MISS


class TestOpen:
    """`open_part_cache` builds the Redis tier from the settings and counts its errors."""

    async def test_dead_redis_is_counted_and_a_miss(self) -> None:
        cache = open_part_cache(CacheSettings(), f"redis://127.0.0.1:{free_port()}")
        before = REGISTRY.get_sample_value("bff_cache_redis_errors_total", {"op": "get"}) or 0
        try:
            assert (await cache.lookup(req())).verdict is Verdict.MISS
        finally:
            await cache.close()
        after = REGISTRY.get_sample_value("bff_cache_redis_errors_total", {"op": "get"})
        assert after == before + 1
