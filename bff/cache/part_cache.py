"""`PartCache`: the per-part HTTP cache the client path calls, tiers and coalescing behind it.

One per worker. The calls a part makes, in order:

    lookup = await cache.lookup(req)              FRESH / STALE / REVALIDATE / MISS
    FRESH        serve lookup.entry.body
    STALE        serve it, and cache.refresh_in_background(lookup, call)
    REVALIDATE   call with If-None-Match: lookup.etag; on 304 cache.revalidated(...)
    MISS         call
    200          cache.store(req, lookup, headers, body)
    failure      cache.stale_if_error(lookup) -> StaleCopy | None
    bad body     cache.drop(lookup)             (a copy that no longer decodes)

Calls go through `cache.coalesce(req, lookup, call, shareable)` so that concurrent callers
of one key share one. With the cache off there is no `PartCache` at all (`open_part_cache`
gives None) and a part goes straight to its client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from bff.cache.coalesce import SingleFlight
from bff.cache.entry import Entry, Shape, belongs, decode_entry, decode_shape, encode
from bff.cache.keys import cold_key, shape_key, variant_key
from bff.cache.memory import MemoryTier
from bff.cache.outcomes import Lookup, PartRequest, StaleCopy, Verdict
from bff.cache.policy import freshness
from bff.cache.redis_tier import RedisTier
from bff.cache.renewal import NOT_OURS, renewed
from bff.observability import metrics
from bff.settings.cache import CacheSettings

__all__ = ["PartCache"]

T = TypeVar("T")
# How long a response that could not be stored keeps its key from asking Redis: short, so a
# service that starts sending caching headers is cached again within seconds.
UNCACHEABLE_S = 5.0


class PartCache:
    def __init__(
        self,
        settings: CacheSettings,
        *,
        redis: RedisTier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`redis`: the shared tier (see `open_part_cache`); `clock`: epoch seconds."""
        self.settings = settings
        self._memory = MemoryTier(settings.max_bytes)
        self._redis = redis
        self._clock = clock
        self._flight: SingleFlight[tuple[str, Any]] = SingleFlight()
        self._refreshing: dict[str, asyncio.Task[Any]] = {}

    # -- lookup ----------------------------------------------------------------------------

    async def lookup(self, req: PartRequest) -> Lookup:
        now = self._clock()
        where = shape_key(req.base)
        shape = self._memory.shape(where)
        if shape is None and self._redis is not None:
            shape = await self._remote(where, decode_shape)
            if shape is not None:
                self._memory.put(where, shape)
        if shape is None or shape.uncacheable_until > now:
            return self._counted(
                req, Lookup(Verdict.MISS, cold_key(req.base, req.headers, req.identity))
            )
        key = variant_key(req.base, shape, req.headers, req.identity)
        entry = self._memory.entry(key, now)
        if entry is None and self._redis is not None:
            entry = await self._remote(key, decode_entry)
            if entry is not None and belongs(entry, shape, now):
                self._memory.put(key, entry)
            else:
                entry = None
        if entry is None:
            return self._counted(req, Lookup(Verdict.MISS, key))
        meta = entry.meta
        if now < meta.fresh_until:
            verdict = Verdict.FRESH
        elif now < meta.swr_until:
            verdict = Verdict.STALE
        else:
            verdict = Verdict.REVALIDATE
        return self._counted(req, Lookup(verdict, key, entry))

    # -- after the call ---------------------------------------------------------------------

    def store(
        self, req: PartRequest, lookup: Lookup, headers: Mapping[str, str], body: bytes
    ) -> Entry | None:
        """Keep a 200's body if its headers allow; returns the entry kept, or None.

        `headers`: the response's, case-insensitive (aiohttp's `resp.headers`). A response
        the service no longer lets us store also forgets the copy this request had."""
        now = self._clock()
        meta = freshness(
            headers, now=now, identified=req.identified, max_ttl_s=self.settings.max_ttl_s
        )
        if meta is None:
            self.drop(lookup)
            self._remember_uncacheable(req, now)
            return None
        return self._keep(req, Entry(body, meta), now)

    def revalidated(
        self, req: PartRequest, lookup: Lookup, headers: Mapping[str, str]
    ) -> Entry | None:
        """The copy a 304 confirmed, with its freshness renewed; None when the 304 is not
        about our copy (another strong ETag): then the caller asks again unconditionally.

        The rules are `bff.cache.renewal`'s. A copy the 304 confirms but that may no longer
        be kept is returned (it answers this request) and forgotten."""
        old = lookup.entry
        if old is None:
            return None
        now = self._clock()
        meta = renewed(
            old.meta,
            headers,
            now=now,
            identified=req.identified,
            max_ttl_s=self.settings.max_ttl_s,
        )
        if meta is NOT_OURS:
            self.drop(lookup)
            return None
        self._count(req, "revalidated")
        if meta is None:
            self.drop(lookup)
            return old  # current for this answer, but not to be kept
        return self._keep(req, Entry(old.body, meta), now) or old

    def stale_if_error(self, req: PartRequest, lookup: Lookup) -> StaleCopy | None:
        """The copy to serve because the live call failed, if inside its stale-if-error window."""
        entry = lookup.entry
        now = self._clock()
        if entry is None or now >= entry.meta.sie_until:
            return None
        self._count(req, "stale_if_error")
        return StaleCopy(entry.body, lookup.age_s(now))

    def drop(self, lookup: Lookup) -> None:
        """Forget the copy this lookup found (it no longer decodes, or may not be kept)."""
        if lookup.entry is None:
            return
        self._memory.drop(lookup.key)
        if self._redis is not None:
            self._redis.drop_later(lookup.key)

    # -- calls ------------------------------------------------------------------------------

    async def coalesce(
        self,
        req: PartRequest,
        lookup: Lookup,
        call: Callable[[], Awaitable[T]],
        shareable: Callable[[T], bool],
        *,
        until: float | None = None,
    ) -> tuple[T, bool]:
        """`call()`'s result, one call for every concurrent caller of `lookup.key`.

        Returns (result, coalesced). A caller whose identity differs from the one that made
        the call gets that result only if `shareable(result)` (the service let it be kept for
        everyone); otherwise it makes a call of its own. A caller that joins another's call
        waits for it until `until` (loop time; TimeoutError past it), every wait included; its
        own call is bounded by `call` (see bff.cache.coalesce). Cancel it to stop waiting."""

        async def led() -> tuple[str, Any]:
            return req.identity, await call()

        flight = self._flight
        (leader, result), joined = await flight.run(lookup.key, led, until)
        if joined and leader != req.identity and not shareable(result):
            own = f"{lookup.key}|u{req.identity}"
            (_, result), _ = await flight.run(own, led, until)
            joined = False
        if joined:
            self._count(req, "coalesced")
        return cast(T, result), joined

    def refresh_in_background(self, lookup: Lookup, call: Callable[[], Awaitable[Any]]) -> bool:
        """Start `call()` unless a refresh of this key is already running (one per key).

        `call` makes the conditional request and stores what comes back itself; it must
        bound its own time. Its failures are its own: the served copy stays as it was."""
        if lookup.key in self._refreshing:
            return False
        task = asyncio.ensure_future(call())
        self._refreshing[lookup.key] = task
        task.add_done_callback(lambda t: self._refreshed(lookup.key, t))
        return True

    async def close(self) -> None:
        for task in list(self._refreshing.values()):
            task.cancel()
        await asyncio.gather(*self._refreshing.values(), return_exceptions=True)
        if self._redis is not None:
            await self._redis.close()

    def _keep(self, req: PartRequest, entry: Entry, now: float) -> Entry | None:
        meta = entry.meta
        shape = Shape(meta.vary, meta.shared)
        key = variant_key(req.base, shape, req.headers, req.identity)
        if not self._memory.put(key, entry):
            return None
        self._memory.put(shape_key(req.base), shape)
        metrics.CACHE_STORED_BYTES.set(self._memory.bytes_used)
        if self._redis is not None:
            # Kept in Redis until its last window closes; a revalidation renews it.
            ttl = meta.expires_at - now
            self._redis.put_later(key, encode(entry), ttl)
            self._redis.put_later(shape_key(req.base), encode(shape), ttl)
        return entry

    def _remember_uncacheable(self, req: PartRequest, now: float) -> None:
        shape = Shape((), False, now + UNCACHEABLE_S)
        where = shape_key(req.base)
        self._memory.put(where, shape)
        if self._redis is not None:
            self._redis.put_later(where, encode(shape), UNCACHEABLE_S)

    async def _remote(self, key: str, decode: Callable[[bytes], T | None]) -> T | None:
        assert self._redis is not None
        raw = await self._redis.get(key)
        return None if raw is None else decode(raw)

    def _refreshed(self, key: str, task: asyncio.Task[Any]) -> None:
        self._refreshing.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: the refresh's failure is not the caller's

    def _counted(self, req: PartRequest, lookup: Lookup) -> Lookup:
        self._count(req, lookup.verdict.value)
        return lookup

    @staticmethod
    def _count(req: PartRequest, result: str) -> None:
        metrics.cache_lookups(req.service, result).inc()
