"""The per-part HTTP cache: a correct shared cache (RFC 9111 + RFC 5861) in front of each
downstream service, with request coalescing.

    part_cache.py   PartCache: the facade the client path calls (lookup, store, 304, stale)
    ├── outcomes.py PartRequest, Lookup (FRESH / STALE / REVALIDATE / MISS), StaleCopy
    ├── policy.py   Cache-Control, Age, Date, ETag, Vary -> absolute deadlines, once
    ├── keys.py     which copy may answer whom: Vary values, identity, coalescing keys
    ├── memory.py   per-worker LRU bounded in bytes (an OrderedDict)
    ├── redis_tier.py  optional tier shared by all workers and instances; fails as a miss
    ├── entry.py    the stored records and their versioned msgpack form
    └── coalesce.py single flight per key, each waiter under its own deadline
"""

from __future__ import annotations

from bff.cache.outcomes import Lookup, PartRequest, StaleCopy, Verdict
from bff.cache.part_cache import PartCache
from bff.cache.redis_tier import RedisTier
from bff.observability import metrics
from bff.settings.cache import CacheSettings

__all__ = [
    "Lookup",
    "PartCache",
    "PartRequest",
    "StaleCopy",
    "Verdict",
    "open_part_cache",
]


def open_part_cache(settings: CacheSettings, redis_url: str | None = None) -> PartCache | None:
    """The worker's cache, with its Redis tier when `redis_url` is set (BFF_REDIS_URL); None
    when the cache is off (BFF_CACHE=off).

    Connects lazily (nothing happens before the first lookup); `await cache.close()` at
    shutdown."""
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
