"""PartCache: the shared-cache rules as the client path sees them, with a clock we move."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, NamedTuple

import pytest
from cache_support import Clock, RedisServer, free_port, headers
from prometheus_client import REGISTRY

from bff.cache.entry import Entry
from bff.cache.redis_tier import RedisTier
from bff.cache.store import (
    FRESH,
    MISS,
    REVALIDATE,
    STALE,
    Lookup,
    PartCache,
    View,
    open_part_cache,
)
from bff.observability import metrics
from bff.settings.cache import CacheSettings

PRODUCT_CC = "max-age=60, stale-while-revalidate=30, stale-if-error=600"
ALICE = {"Authorization": "Bearer alice"}
BOB = {"Authorization": "Bearer bob"}


class Req(NamedTuple):
    """One part of one request: its service, its id, and what of it the cache sees."""

    service: str
    pid: str
    view: View

    @property
    def identity(self) -> str:
        return self.view.identity


def req(pid: str = "P001", service: str = "product", **fields: str) -> Req:
    forwarded = {k.replace("_", "-").lower(): v for k, v in fields.items()}
    return Req(service, pid, View(forwarded))


async def look(cache: PartCache, r: Req) -> Lookup:
    """What the cache has for `r`: memory, then Redis when memory cannot tell."""
    lookup = cache.lookup(r.service, r.pid, r.view)
    if lookup.remote:
        lookup = await cache.lookup_remote(r.service, lookup, r.view)
    return lookup


def store(cache: PartCache, r: Req, lookup: Lookup, body: bytes = b"{}", **h: str) -> Entry | None:
    return cache.store(r.service, r.view, lookup, headers(**h), body, None)


def revalidated(cache: PartCache, r: Req, lookup: Lookup, h: Any) -> Entry | None:
    return cache.revalidated(r.service, r.view, lookup, h)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> Iterator[PartCache]:
    """A cache whose counts reach the registry (as a worker's do once it starts)."""
    cache = PartCache(CacheSettings(), clock=clock)
    forget = metrics.watch(cache)
    yield cache
    forget()


def counted(service: str, result: str) -> float:
    metrics.flush()
    value = REGISTRY.get_sample_value(
        "bff_cache_lookups_total", {"service": service, "result": result}
    )
    return value or 0.0


class TestFreshness:
    """Fresh: no call; stale within stale-while-revalidate: served, refreshed once; then
    revalidated with If-None-Match, a 304 renewing the copy."""

    async def test_miss_then_hit(self, cache: PartCache, clock: Clock) -> None:
        r = req()
        miss = await look(cache, r)
        assert miss.verdict == MISS
        store(cache, r, miss, b'{"id":"P001"}', Cache_Control=PRODUCT_CC, ETag='"e1"')
        hit = await look(cache, req())
        assert hit.verdict == FRESH
        assert hit.entry is not None
        assert hit.entry.body == b'{"id":"P001"}'
        clock.advance(59)
        assert (await look(cache, r)).verdict == FRESH

    async def test_stale_while_revalidate_then_revalidate(
        self, cache: PartCache, clock: Clock
    ) -> None:
        r = req()
        store(cache, r, await look(cache, r), Cache_Control=PRODUCT_CC, ETag='"e1"')
        clock.advance(61)
        stale = await look(cache, r)
        assert stale.verdict == STALE
        clock.advance(30)
        expired = await look(cache, r)
        assert expired.verdict == REVALIDATE
        assert expired.entry is not None
        assert expired.entry.meta.etag == '"e1"'

    async def test_one_background_refresh_per_key(self, cache: PartCache, clock: Clock) -> None:
        r = req()
        store(cache, r, await look(cache, r), Cache_Control=PRODUCT_CC)
        clock.advance(70)
        stale = await look(cache, r)
        gate = asyncio.Event()
        calls = 0

        async def refresh() -> None:
            nonlocal calls
            calls += 1
            await gate.wait()
            raise ConnectionError("a failed refresh leaves the copy as it was")

        assert cache.refresh_in_background(stale.key, refresh)
        assert not cache.refresh_in_background((await look(cache, r)).key, refresh)
        gate.set()
        await asyncio.sleep(0.01)
        assert calls == 1
        assert (await look(cache, r)).verdict == STALE
        assert cache.refresh_in_background(stale.key, refresh)  # the first one is over
        await cache.close()

    async def test_304_renews_the_copy(self, cache: PartCache, clock: Clock) -> None:
        r = req()
        store(cache, r, await look(cache, r), b"body", Cache_Control="max-age=10", ETag='"e1"')
        clock.advance(11)
        expired = await look(cache, r)
        before = counted("product", "revalidated")
        renewed = revalidated(cache, r, expired, headers(ETag='"e1"', Cache_Control="max-age=20"))
        assert renewed is not None
        assert renewed.body == b"body"
        assert counted("product", "revalidated") == before + 1
        clock.advance(19)
        assert (await look(cache, r)).verdict == FRESH

    async def test_304_without_cache_control_keeps_the_lifetimes(
        self, cache: PartCache, clock: Clock
    ) -> None:
        r = req()
        store(
            cache,
            r,
            await look(cache, r),
            Cache_Control="max-age=10, stale-if-error=5",
            ETag='"e1"',
        )
        clock.advance(100)
        renewed = revalidated(cache, r, await look(cache, r), headers())
        assert renewed is not None
        assert renewed.meta.fresh_until == clock.now + 10
        assert renewed.meta.sie_until == clock.now + 15

    async def test_304_for_another_tag_is_not_ours(self, cache: PartCache, clock: Clock) -> None:
        r = req()
        store(cache, r, await look(cache, r), Cache_Control="max-age=10", ETag='"e1"')
        clock.advance(11)
        assert revalidated(cache, r, await look(cache, r), headers(ETag='"e2"')) is None
        assert (await look(cache, r)).verdict == MISS

    async def test_304_saying_no_store_answers_once_then_forgets(
        self, cache: PartCache, clock: Clock
    ) -> None:
        r = req()
        store(cache, r, await look(cache, r), b"body", Cache_Control="max-age=10", ETag='"e1"')
        clock.advance(11)
        confirmed = revalidated(cache, r, await look(cache, r), headers(Cache_Control="no-store"))
        assert confirmed is not None
        assert confirmed.body == b"body"
        assert (await look(cache, r)).verdict == MISS

    async def test_no_store_forgets_the_old_copy(self, cache: PartCache, clock: Clock) -> None:
        r = req()
        store(cache, r, await look(cache, r), Cache_Control=PRODUCT_CC)
        clock.advance(100)
        stale = await look(cache, r)
        assert store(cache, r, stale, Cache_Control="no-store") is None
        assert (await look(cache, r)).verdict == MISS

    async def test_drop(self, cache: PartCache) -> None:
        r = req()
        store(cache, r, await look(cache, r), b"not json any more", Cache_Control=PRODUCT_CC)
        cache.drop(await look(cache, r))
        assert (await look(cache, r)).verdict == MISS


class TestStaleIfError:
    """A failed call may serve the copy within its stale-if-error window, with its age."""

    async def test_within_and_past_the_window(self, cache: PartCache, clock: Clock) -> None:
        r = req()
        store(
            cache,
            r,
            await look(cache, r),
            b"old",
            Cache_Control="max-age=2, stale-if-error=60",
            Age="1",
        )
        clock.advance(30)
        lookup = await look(cache, r)
        assert lookup.entry is not None
        assert lookup.entry.body == b"old"
        assert cache.stale_if_error(r.service, lookup) == 31  # its age, in whole seconds
        clock.advance(31)
        assert cache.stale_if_error(r.service, await look(cache, r)) is None

    async def test_must_revalidate_is_never_served_stale(
        self, cache: PartCache, clock: Clock
    ) -> None:
        r = req()
        store(
            cache,
            r,
            await look(cache, r),
            Cache_Control="max-age=2, must-revalidate, stale-if-error=60",
        )
        clock.advance(3)
        assert cache.stale_if_error(r.service, await look(cache, r)) is None


class TestWhoIsServed:
    """`private` and identified requests stay with their identity; Vary splits the key."""

    async def test_private_never_reaches_another_identity(self, cache: PartCache) -> None:
        alice = req(**ALICE)
        store(
            cache, alice, await look(cache, alice), b"alice's", Cache_Control="private, max-age=60"
        )
        assert (await look(cache, req(**ALICE))).verdict == FRESH
        assert (await look(cache, req(**BOB))).verdict == MISS
        assert (await look(cache, req())).verdict == MISS

    async def test_private_without_identity_is_not_stored(self, cache: PartCache) -> None:
        anon = req()
        assert (
            store(cache, anon, await look(cache, anon), Cache_Control="private, max-age=60") is None
        )
        assert (await look(cache, req())).verdict == MISS

    async def test_subject_is_an_identity(self, cache: PartCache) -> None:
        sub = req(X_User_ID="u1")
        store(cache, sub, await look(cache, sub), Cache_Control="max-age=60")
        assert (await look(cache, req(X_User_ID="u1"))).verdict == FRESH
        assert (await look(cache, req(X_User_ID="u2"))).verdict == MISS

    @pytest.mark.parametrize(
        ("cc", "shared"),
        [("max-age=60", False), ("public, max-age=60", True), ("s-maxage=60", True)],
    )
    async def test_authorized_request(self, cache: PartCache, cc: str, shared: bool) -> None:
        alice = req(**ALICE)
        store(cache, alice, await look(cache, alice), Cache_Control=cc)
        bob = await look(cache, req(**BOB))
        assert (bob.verdict == FRESH) is shared
        anon = await look(cache, req())
        assert (anon.verdict == FRESH) is shared

    async def test_vary(self, cache: PartCache) -> None:
        fr = req(Accept_Language="fr")
        store(
            cache,
            fr,
            await look(cache, fr),
            b"bonjour",
            Cache_Control=PRODUCT_CC,
            Vary="Accept-Language",
        )
        hit = await look(cache, req(Accept_Language="fr"))
        assert hit.verdict == FRESH
        assert hit.entry is not None
        assert hit.entry.body == b"bonjour"
        assert (await look(cache, req(Accept_Language="de"))).verdict == MISS
        assert (await look(cache, req())).verdict == MISS
        # Headers not named by Vary do not split the key.
        assert (await look(cache, req(Accept_Language="fr", X_Request_ID="x"))).verdict == FRESH

    async def test_vary_star_is_not_stored(self, cache: PartCache) -> None:
        r = req()
        assert store(cache, r, await look(cache, r), Cache_Control=PRODUCT_CC, Vary="*") is None

    async def test_services_and_ids_are_separate(self, cache: PartCache) -> None:
        r = req()
        store(cache, r, await look(cache, r), Cache_Control=PRODUCT_CC)
        assert (await look(cache, req("P002"))).verdict == MISS
        assert (await look(cache, req(service="reviews"))).verdict == MISS


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
        store(cache, r, await look(cache, r), Cache_Control="max-age=2")
        await look(cache, r)
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
