"""Cache and compression settings: the per-part cache, its Redis tier, our answer's encoding.

The Redis tier uses the one shared `Settings.redis_url` (BFF_REDIS_URL), as the rate limit does."""

from __future__ import annotations

from dataclasses import dataclass

from bff.settings.parse import Reader, boolean, non_negative_int, positive_float, positive_int

__all__ = ["CacheSettings", "read_cache"]


@dataclass(frozen=True, slots=True)
class CacheSettings:
    enabled: bool = True  # BFF_CACHE=off: no part cache, no coalescing
    max_bytes: int = 64 * 1024 * 1024  # memory tier, per worker
    max_ttl_s: float = 86_400.0  # no service's max-age or stale window is kept longer
    # Per Redis lookup (one round trip is ~0.1-0.3 ms on a LAN); past it, a miss.
    redis_timeout_ms: float = 5.0
    # Answers smaller than this go out uncompressed (the saving would not pay the CPU).
    compress_min_bytes: int = 1024


def read_cache(read: Reader) -> CacheSettings:
    """A variable not set keeps the dataclass's default (written once, above)."""
    d = _DEFAULT
    return CacheSettings(
        enabled=read("BFF_CACHE", boolean, d.enabled),
        max_bytes=read("BFF_CACHE_MAX_BYTES", positive_int, d.max_bytes),
        max_ttl_s=read("BFF_CACHE_MAX_TTL_S", positive_float, d.max_ttl_s),
        redis_timeout_ms=read("BFF_CACHE_REDIS_TIMEOUT_MS", positive_float, d.redis_timeout_ms),
        compress_min_bytes=read("BFF_COMPRESS_MIN_BYTES", non_negative_int, d.compress_min_bytes),
    )


_DEFAULT = CacheSettings()
