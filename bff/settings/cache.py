"""Cache and compression settings: the per-part cache, its Redis tier, our answer's encoding.

Operators turn the cache off (`BFF_CACHE=off`), size its memory (`BFF_CACHE_MAX_BYTES`) and
set the smallest answer worth compressing (`BFF_COMPRESS_MIN_BYTES`); the Redis tier uses the
one shared `Settings.redis_url` (BFF_REDIS_URL), as the rate limit does. The rest are fixed
values with their reasons."""

from __future__ import annotations

from dataclasses import dataclass

from bff.settings.declaration import setting
from bff.settings.kinds import Integer, Switch

__all__ = ["CacheSettings"]

# Beyond a gigabyte a figure is a typo, not a choice.
_GIGABYTE = 1_000_000_000


@dataclass(frozen=True, slots=True)
class CacheSettings:
    enabled: bool = setting(
        "BFF_CACHE", Switch(), "`off`: no part cache and no coalescing", default=True
    )
    # Per worker, sized against the container's memory.
    max_bytes: int = setting(
        "BFF_CACHE_MAX_BYTES",
        Integer(1, _GIGABYTE, "a number of bytes"),
        "the part cache's memory tier per worker (64 MiB)",
        default=64 * 1024 * 1024,
    )
    # Below about 1 KiB the saving would not pay the CPU (gzip level 1-6 costs 0.3-1.4 ms).
    compress_min_bytes: int = setting(
        "BFF_COMPRESS_MIN_BYTES",
        Integer(0, _GIGABYTE, "a number of bytes"),
        "answers at least this large are compressed (`gzip`, `br`) when the client accepts it;"
        " `0`: every answer",
        default=1024,
    )
    # A day: no service's max-age or stale window is kept longer, whatever it says, so a
    # mistaken "max-age=31536000" costs a day at most.
    max_ttl_s: float = 86_400.0
    # Per Redis lookup (one round trip is ~0.1-0.3 ms on a LAN); past it, a miss.
    redis_timeout_s: float = 0.005
