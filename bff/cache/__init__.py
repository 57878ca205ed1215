"""The per-part HTTP cache: a correct shared cache (RFC 9111 + RFC 5861) in front of each
downstream service, with request coalescing.

    fetcher.py      CachedFetcher: a part through the cache to its client; one call per key
    store.py        PartCache: the memory tier, the Redis tier, keys, what each lookup decided
    rules.py        Cache-Control, Age, Date, ETag, Vary -> absolute deadlines, once; 304s
    entry.py        the stored records and their versioned msgpack form (Redis)
    redis_tier.py   the optional tier shared by all workers and instances; fails as a miss
"""
