"""`PartCache`: where stored copies live (memory per worker, Redis for everyone), which copy
may answer which request, and what each lookup decided.

    lookup(service, id, view)        memory only: FRESH / STALE / REVALIDATE / MISS, or
                                     `remote` when only Redis could still have a copy
    await lookup_remote(...)         memory, then Redis
    store(view, lookup, headers, body, value)    a 200, kept if its headers allow
    revalidated(view, lookup, headers)           a 304 to our If-None-Match
    stale_if_error(lookup)           the copy to serve because the live call failed
    drop(lookup)                     a copy that no longer decodes, or may not be kept

Keys say who may be served which copy:

    base     "<service>/<id>"
    shape    base + "|shape"                                   where the key's Shape lives
    variant  base + "|v" + digest(values of the Vary headers)  when the response varies
             + "|u" + identity                                 when it is not shared
    cold     base + "|c" + digest(identity, Accept-Language)   before any Shape is known, and
                                                               for answers that are never stored

An identity is a digest of the `Authorization` and `X-User-ID` the call carries (never the
token itself: keys show up in Redis and in debugging); no identity at all is one identity too,
"anon". A `View` is what of a request decides all this: the client headers that go
downstream, nothing else (the service cannot vary on what it never sees).

The memory tier is one LRU per worker (an `OrderedDict` in least-recently-used order and a
running total of the records' sizes: a get is a lookup and a `move_to_end`, both in C; an
insert evicts from the front until the total fits; a record larger than the whole budget is
not kept). The Redis tier (bff.cache.redis_tier) is asked only after a memory miss and fails
as a miss. Nothing here blocks or raises.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from bff.cache.entry import Entry, Shape, belongs, decode_entry, decode_shape, encode
from bff.cache.redis_tier import RedisTier
from bff.cache.rules import NOT_OURS, freshness, renewed, vary_names
from bff.observability import metrics
from bff.settings.cache import CacheSettings

__all__ = [
    "FRESH",
    "MISS",
    "REVALIDATE",
    "STALE",
    "Lookup",
    "PartCache",
    "View",
    "open_part_cache",
]

ANONYMOUS = "anon"
# A lookup's verdict is the metric's `result` label.
FRESH = "hit"  # serve the copy, make no call
STALE = "stale"  # serve the copy; refresh it in the background (stale-while-revalidate)
REVALIDATE = "expired"  # call, with If-None-Match when the copy has an ETag
MISS = "miss"  # call
# How long a response that could not be stored keeps its key from asking Redis: short, so a
# service that starts sending caching headers is cached again within seconds.
UNCACHEABLE_S = 5.0


def _digest(*parts: str) -> str:
    data = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=12).hexdigest()


class View:
    """One request as the cache sees it: the client headers that go downstream (lower-case
    names), and who is asking."""

    __slots__ = ("_cold", "headers", "identity")

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = headers
        auth = headers.get("authorization")
        user = headers.get("x-user-id")
        self.identity = ANONYMOUS if not auth and not user else _digest(auth or "", user or "")
        self._cold: str | None = None

    @property
    def identified(self) -> bool:
        return self.identity != ANONYMOUS

    @property
    def cold(self) -> str:
        """Everything the service could tell requests apart by: who, and the language."""
        cold = self._cold
        if cold is None:
            cold = self._cold = _digest(self.identity, self.headers.get("accept-language", ""))
        return cold


class MemoryTier:
    """One LRU per worker, bounded in bytes, holding entries and shapes (see the module's
    docstring). `lru` is read directly by `PartCache.lookup`, the path every part of every
    request takes; everything that changes it goes through here."""

    __slots__ = ("_max_bytes", "bytes_used", "lru")

    def __init__(self, max_bytes: int) -> None:
        self.lru: OrderedDict[str, Entry | Shape] = OrderedDict()
        self._max_bytes = max_bytes
        self.bytes_used = 0

    def __len__(self) -> int:
        return len(self.lru)

    def entry(self, key: str, now: float) -> Entry | None:
        """The copy under `key`, if it is still of some use at `now` (a copy past its last
        window is dropped, unless it has a validator to revalidate it with)."""
        record = self.lru.get(key)
        if not isinstance(record, Entry):
            return None
        if record.meta.expires_at <= now and record.meta.etag is None:
            self.drop(key)
            return None
        self.lru.move_to_end(key)
        return record

    def shape(self, key: str) -> Shape | None:
        record = self.lru.get(key)
        if not isinstance(record, Shape):
            return None
        self.lru.move_to_end(key)
        return record

    def put(self, key: str, record: Entry | Shape) -> bool:
        """Keep `record` (evicting the least recently used); False when it is too large (an
        older copy under the key is dropped all the same: it would now be wrong)."""
        lru = self.lru
        old = lru.pop(key, None)
        if old is not None:
            self.bytes_used -= old.size
        size = record.size
        if size > self._max_bytes:
            return False
        lru[key] = record
        self.bytes_used += size
        while self.bytes_used > self._max_bytes:
            _, evicted = lru.popitem(last=False)
            self.bytes_used -= evicted.size
        return True

    def drop(self, key: str) -> None:
        record = self.lru.pop(key, None)
        if record is not None:
            self.bytes_used -= record.size


class Lookup(NamedTuple):
    """A lookup's verdict. `key`: where this request's copy lives, and the coalescing key.
    `entry`: the copy found (kept for REVALIDATE too: a 304 renews it, an error may serve it
    within its stale-if-error window). `remote`: a memory miss that Redis may still answer."""

    verdict: str
    key: str
    base: str
    entry: Entry | None = None
    shape: Shape | None = None
    remote: bool = False


class PartCache:
    def __init__(
        self,
        settings: CacheSettings,
        *,
        redis: RedisTier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`redis`: the shared tier; `clock`: epoch seconds."""
        self.settings = settings
        self._memory = MemoryTier(settings.max_bytes)
        self._lru = self._memory.lru
        self._redis = redis
        self.clock = clock
        self._refreshing: dict[str, asyncio.Task[Any]] = {}
        # (service, result) -> lookups since start (bff_cache_lookups_total).
        self.lookups: defaultdict[tuple[str, str], int] = defaultdict(int)

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def bytes_used(self) -> int:
        return self._memory.bytes_used

    # -- lookup ----------------------------------------------------------------------------

    def lookup(self, service: str, product_id: str, view: View) -> Lookup:
        """What the memory tier holds for this request (`remote` set when Redis may have it:
        then `lookup_remote` decides)."""
        now = self.clock()
        base = f"{service}/{product_id}"
        lru = self._lru
        shape = lru.get(base + "|shape")
        if not isinstance(shape, Shape) or shape.uncacheable:
            return self._unknown(service, base, view, shape, now)
        lru.move_to_end(base + "|shape")
        key = base if shape.shared and not shape.vary else variant_key(base, shape, view)
        entry = lru.get(key)
        if not isinstance(entry, Entry):
            if self._redis is not None:
                return Lookup(MISS, key, base, None, shape, remote=True)
            self.lookups[(service, MISS)] += 1
            return Lookup(MISS, key, base, None, shape)
        meta = entry.meta
        if now < meta.fresh_until:
            verdict = FRESH
        elif now < meta.swr_until:
            verdict = STALE
        elif now >= meta.expires_at and meta.etag is None:
            self._memory.drop(key)  # of no use any more, and nothing to revalidate it with
            if self._redis is not None:
                return Lookup(MISS, key, base, None, shape, remote=True)
            self.lookups[(service, MISS)] += 1
            return Lookup(MISS, key, base, None, shape)
        else:
            verdict = REVALIDATE
        lru.move_to_end(key)
        self.lookups[(service, verdict)] += 1
        return Lookup(verdict, key, base, entry, shape)

    def _unknown(
        self, service: str, base: str, view: View, shape: Entry | Shape | None, now: float
    ) -> Lookup:
        """No usable shape in memory: a miss under the cold key (Redis may know the shape,
        unless the key was found uncacheable a moment ago)."""
        key = f"{base}|c{view.cold}"
        known = shape if isinstance(shape, Shape) else None
        if known is not None and now < known.uncacheable_until:
            self.lookups[(service, MISS)] += 1
            return Lookup(MISS, key, base, None, known)
        if self._redis is not None:
            return Lookup(MISS, key, base, None, None, remote=True)
        self.lookups[(service, MISS)] += 1
        return Lookup(MISS, key, base, None, known)

    async def lookup_remote(self, service: str, lookup: Lookup, view: View) -> Lookup:
        """`lookup` (a memory miss) completed from Redis: a shape, then a copy."""
        assert self._redis is not None
        now = self.clock()
        base = lookup.base
        shape = lookup.shape
        if shape is None:
            shape = await self._remote(base + "|shape", decode_shape)
            if shape is not None:
                self._memory.put(base + "|shape", shape)
        if shape is None or (shape.uncacheable and now < shape.uncacheable_until):
            self.lookups[(service, MISS)] += 1
            return Lookup(MISS, f"{base}|c{view.cold}", base, None, shape)
        if shape.uncacheable:  # another instance may have stored a copy since
            shape = Shape(shape.vary, shape.shared)
        key = variant_key(base, shape, view)
        entry = await self._remote(key, decode_entry)
        if entry is None or not belongs(entry, shape, now):
            self.lookups[(service, MISS)] += 1
            return Lookup(MISS, key, base, None, shape)
        self._memory.put(key, entry)
        meta = entry.meta
        if now < meta.fresh_until:
            verdict = FRESH
        elif now < meta.swr_until:
            verdict = STALE
        else:
            verdict = REVALIDATE
        self.lookups[(service, verdict)] += 1
        return Lookup(verdict, key, base, entry, shape)

    # -- after the call ---------------------------------------------------------------------

    def store(
        self,
        service: str,
        view: View,
        lookup: Lookup,
        headers: Mapping[str, str],
        body: bytes,
        value: Any,
    ) -> Entry | None:
        """Keep a 200's body (and its decoded value) if its headers allow; returns the entry
        kept, or None. A response the service no longer lets us store also forgets the copy
        this request had, and marks the key uncacheable for a while."""
        now = self.clock()
        meta = freshness(
            headers, now=now, identified=view.identified, max_ttl_s=self.settings.max_ttl_s
        )
        if meta is None:
            self.drop(lookup)
            self._remember_uncacheable(lookup.base, now, headers)
            return None
        return self._keep(lookup.base, view, Entry(body, meta, value), now)

    def revalidated(
        self, service: str, view: View, lookup: Lookup, headers: Mapping[str, str]
    ) -> Entry | None:
        """The copy a 304 confirmed, with its freshness renewed; None when the 304 is not
        about our copy (another strong ETag): then the caller asks again unconditionally.
        A copy the 304 confirms but that may no longer be kept is returned (it answers this
        request) and forgotten."""
        old = lookup.entry
        if old is None:
            return None
        now = self.clock()
        meta = renewed(
            old.meta,
            headers,
            now=now,
            identified=view.identified,
            max_ttl_s=self.settings.max_ttl_s,
        )
        if meta is NOT_OURS:
            self.drop(lookup)
            return None
        self.lookups[(service, "revalidated")] += 1
        if meta is None:
            self.drop(lookup)
            return old  # current for this answer, but not to be kept
        return self._keep(lookup.base, view, Entry(old.body, meta, old.value), now) or old

    def stale_if_error(self, service: str, lookup: Lookup) -> int | None:
        """The age in whole seconds of the copy to serve because the live call failed, if
        inside its stale-if-error window; None when there is none."""
        entry = lookup.entry
        now = self.clock()
        if entry is None or now >= entry.meta.sie_until:
            return None
        self.lookups[(service, "stale_if_error")] += 1
        return max(0, int(now - entry.meta.dated_at))

    def count(self, service: str, result: str) -> None:
        self.lookups[(service, result)] += 1

    def drop(self, lookup: Lookup) -> None:
        """Forget the copy this lookup found (it no longer decodes, or may not be kept)."""
        if lookup.entry is not None:
            self._memory.drop(lookup.key)
            if self._redis is not None:
                self._redis.drop_later(lookup.key)

    # -- who may share what -----------------------------------------------------------------

    @staticmethod
    def same_answer(base: str, shape: Shape | None, leader: View, follower: View) -> bool:
        """Would the copy `leader` got (stored under `shape`; None: not stored at all) be
        served to `follower` from the cache? A waiter of a coalesced call gets the answer
        only then: the Vary values, the identity when it is not shared, and for an answer
        that is never stored everything the service could tell them apart by."""
        if leader is follower:
            return True
        if shape is None or shape.uncacheable:
            return leader.cold == follower.cold
        return variant_key(base, shape, leader) == variant_key(base, shape, follower)

    # -- background refresh -----------------------------------------------------------------

    def refresh_in_background(self, key: str, call: Callable[[], Awaitable[Any]]) -> bool:
        """Start `call()` unless a refresh of this key is already running (one per key). It
        makes the conditional request and stores what comes back itself, bounded by its own
        deadline; its failures are its own: the served copy stays as it was."""
        if key in self._refreshing:
            return False
        task = asyncio.ensure_future(call())
        self._refreshing[key] = task
        task.add_done_callback(lambda t: self._refreshed(key, t))
        return True

    def _refreshed(self, key: str, task: asyncio.Task[Any]) -> None:
        self._refreshing.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: the refresh's failure is not the caller's

    async def close(self) -> None:
        for task in list(self._refreshing.values()):
            task.cancel()
        await asyncio.gather(*self._refreshing.values(), return_exceptions=True)
        if self._redis is not None:
            await self._redis.close()

    def write_metrics(self, out: metrics.Writer) -> None:
        out.counters(metrics.CACHE_LOOKUPS, list(self.lookups.items()))
        out.gauge(metrics.CACHE_STORED_BYTES, (), self.bytes_used)

    # -- tiers ------------------------------------------------------------------------------

    def _keep(self, base: str, view: View, entry: Entry, now: float) -> Entry | None:
        meta = entry.meta
        where = base + "|shape"
        shape = self._lru.get(where)
        if (
            not isinstance(shape, Shape)
            or shape.vary != meta.vary
            or shape.shared != meta.shared
            or shape.uncacheable
        ):
            shape = Shape(meta.vary, meta.shared)
            self._memory.put(where, shape)
        key = base if shape.shared and not shape.vary else variant_key(base, shape, view)
        if not self._memory.put(key, entry):
            return None
        if self._redis is not None:
            # Kept in Redis until its last window closes; a revalidation renews it.
            ttl = meta.expires_at - now
            self._redis.put_later(key, encode(entry), ttl)
            self._redis.put_later(base + "|shape", encode(shape), ttl)
        return entry

    def _remember_uncacheable(self, base: str, now: float, headers: Mapping[str, str]) -> None:
        vary = vary_names(headers.get("Vary")) or ()
        shape = Shape(vary, False, now + UNCACHEABLE_S, uncacheable=True)
        self._memory.put(base + "|shape", shape)
        if self._redis is not None:
            self._redis.put_later(base + "|shape", encode(shape), UNCACHEABLE_S)

    async def _remote(self, key: str, decode: Callable[[bytes], Any]) -> Any:
        assert self._redis is not None
        raw = await self._redis.get(key)
        return None if raw is None else decode(raw)


def open_part_cache(settings: CacheSettings, redis_url: str | None = None) -> PartCache | None:
    """The worker's cache, with its Redis tier when `redis_url` is set (BFF_REDIS_URL: it
    connects on the first lookup); None when the cache is off (BFF_CACHE=off)."""
    if not settings.enabled:
        return None
    redis = None
    if redis_url:
        redis = RedisTier(
            redis_url,
            timeout_s=settings.redis_timeout_s,
            on_error=lambda op: metrics.cache_redis_errors(op).inc(),
        )
    return PartCache(settings, redis=redis)


def variant_key(base: str, shape: Shape, view: View) -> str:
    """Where the copy for this request lives, given what the key's last response said."""
    key = base
    if shape.vary:
        headers = view.headers
        key += "|v" + _digest(*(f"{n}:{headers.get(n, '')}" for n in shape.vary))
    if not shape.shared:
        key += "|u" + view.identity
    return key
