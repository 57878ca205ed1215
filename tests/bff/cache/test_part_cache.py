"""PartCache: the shared-cache rules as the client path sees them, with a clock we move."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from cache_support import (
    ALICE,
    BOB,
    PRODUCT_CC,
    Clock,
    headers,
    look,
    req,
    revalidated,
    store,
)
from prometheus_client import REGISTRY

from bff.cache.store import (
    FRESH,
    MISS,
    REVALIDATE,
    STALE,
    PartCache,
    open_part_cache,
)
from bff.observability import metrics
from bff.settings.cache import CacheSettings


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
        (refreshing,) = cache._refreshing.values()
        # Its end: the cache's own done-callback runs first (it was added first).
        await asyncio.wait([refreshing], timeout=5)
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

    async def test_the_window_ends_at_its_last_instant_for_a_copy_kept(
        self, cache: PartCache, clock: Clock
    ) -> None:
        """A copy with an ETag outlives its windows (kept to revalidate): at the instant its
        stale-if-error window closes it is found, and no longer served stale."""
        r, cc = req(), "max-age=2, stale-if-error=60"
        store(cache, r, await look(cache, r), b"old", Cache_Control=cc, Age="1", ETag='"v1"')
        clock.advance(60)  # 1 s before the window closes (binary fractions: exact)
        lookup = await look(cache, r)
        assert lookup.entry is not None
        assert cache.stale_if_error(r.service, lookup) == 61
        clock.advance(1)
        lookup = await look(cache, r)
        assert lookup.entry is not None, "kept for revalidation"
        assert cache.stale_if_error(r.service, lookup) is None

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
