"""Cache and compression settings: the per-part cache, its Redis tier, our answer's encoding.

Operators turn the cache off (`BFF_CACHE=off`), size its memory (`BFF_CACHE_MAX_BYTES`) and
set the smallest answer worth compressing (`BFF_COMPRESS_MIN_BYTES`);
the Redis tier uses the one shared `Settings.redis_url` (BFF_REDIS_URL), as the rate
limit does. The rest are fixed values with their reasons."""

from __future__ import annotations

from dataclasses import dataclass

from msgspec import UNSET

from bff.settings.environment import Environment, given

__all__ = ["CacheSettings", "cache_from"]


@dataclass(frozen=True, slots=True)
class CacheSettings:
    enabled: bool = True  # BFF_CACHE=off: no part cache, no coalescing
    # Memory tier, per worker (BFF_CACHE_MAX_BYTES): sized against the container's memory.
    max_bytes: int = 64 * 1024 * 1024
    # A day: no service's max-age or stale window is kept longer, whatever it says, so a
    # mistaken "max-age=31536000" costs a day at most.
    max_ttl_s: float = 86_400.0
    # Per Redis lookup (one round trip is ~0.1-0.3 ms on a LAN); past it, a miss.
    redis_timeout_ms: float = 5.0
    # Answers smaller than this go out uncompressed (the saving would not pay the CPU);
    # BFF_COMPRESS_MIN_BYTES.
    compress_min_bytes: int = 1024


def cache_from(env: Environment) -> CacheSettings:
    """A variable not set keeps the dataclass's default (written once, above)."""
    return CacheSettings(
        **given(
            enabled=UNSET if env.cache is UNSET else env.cache == "on",
            max_bytes=env.cache_max_bytes,
            compress_min_bytes=env.compress_min_bytes,
        )
    )
