"""Per-client rate limit on the `limits` library: `burst` requests in a `burst/rate` s window.

Two storages, memory unless BFF_REDIS_URL is set (`RateLimitSettings.storage`):

- `memory://`: per worker, limits' *synchronous* MemoryStorage and strategies. They do no
  I/O, so calling them on the event loop never blocks, and they are far cheaper than the
  async MemoryStorage (measured, 1000 clients: about 6 µs a hit against 70-120 µs, because the
  async one schedules an expiry sweep, and for the moving window a thread hop, on every hit).
  The sync storage has a thread of its own, though: see `_LoopMemoryStorage`.
- `redis://host:port` (BFF_REDIS_URL): limits' async Redis storage (coredis), one limit shared
  by every worker and instance. Redis must never hold a request, so every decision through it
  is bounded (`REDIS_BOUND_S`, never more than the time the request has left): past the bound,
  or on any error, the request passes (fail open: the limiter must not become the outage).
  After `FAIL_MAX` failures in a row Redis is skipped for `PAUSE_S`, logged once per pause,
  then one request probes it again. A timeout cut short by the request's own budget says
  nothing about Redis and does not count. A stopped (SIGSTOP) redis-server used to hold every
  request for as long as it was stopped, then answer 503: its client has no timeout of its
  own.
"""

from __future__ import annotations

import asyncio
import math
import time

# coredis imports its pipeline module on the first script call, the moving window's first
# hit: 20 ms measured, on the loop and inside that request's bound. Imported here, at start.
import coredis.pipeline  # noqa: F401
from coredis.retry import NoRetryPolicy
from limits import RateLimitItem, RateLimitItemPerSecond, strategies
from limits.aio import storage as aio_storage
from limits.aio import strategies as aio_strategies

from bff._compat import InlineExpiryMemoryStorage, redis_pool_of
from bff.errors import RateLimited
from bff.observability import metrics
from bff.observability.logging import log
from bff.settings import RateLimitSettings

_SYNC = {
    "moving-window": strategies.MovingWindowRateLimiter,
    "fixed-window": strategies.FixedWindowRateLimiter,
}
_ASYNC = {
    "moving-window": aio_strategies.MovingWindowRateLimiter,
    "fixed-window": aio_strategies.FixedWindowRateLimiter,
}
_SWEEP_S = 1.0
# One decision is one or two round trips (~0.3 ms each measured on loopback, the Lua script of
# the moving window included). Not the part cache's 5 ms: past the bound the cache only makes
# a call it could have saved, the limiter lets everybody through. On a 2-core machine with
# both cores busy, replies past 5 ms came three in a row often enough to pause the shared limit
# for a second at a time (126 requests let through where the limit was 100, three instances
# behind nginx); 25 ms is what a stopped Redis costs each of the three requests that find it
# so before the pause.
REDIS_BOUND_S = 0.025
# As the part cache's tier: three failures in a row, not one, so a single slow reply among
# successes does not switch the shared limit off; a second of requests let through unlimited,
# then one probe.
FAIL_MAX = 3
PAUSE_S = 1.0


class _LoopMemoryStorage(InlineExpiryMemoryStorage):
    """limits' MemoryStorage without its expiry thread (`bff._compat` says why): the trim of
    expired windows runs inline, on the loop, at most once per `_SWEEP_S`. Hits stay exact in
    between (both strategies check the times themselves); the trim only bounds memory, to
    about `burst` entries per client."""

    def __init__(self) -> None:
        super().__init__()
        self._next_sweep = 0.0

    def on_hit(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_S
            self.expire()


class RateLimiter:
    __slots__ = ("_async", "_failures", "_item", "_limit", "_paused_until", "_storage", "_sync")

    def __init__(self, settings: RateLimitSettings) -> None:
        self._item: RateLimitItem = RateLimitItemPerSecond(settings.burst, settings.window_s)
        self._limit = str(settings.burst)
        self._sync: strategies.RateLimiter | None = None
        self._async: aio_strategies.RateLimiter | None = None
        self._storage: aio_storage.RedisStorage | None = None
        self._failures = 0
        self._paused_until = 0.0
        if settings.storage == "memory://":
            self._sync = _SYNC[settings.strategy](_LoopMemoryStorage())
        else:
            # As the part cache's tier: coredis' own retries off (it retries a refused
            # connection twice, 10 ms apart: past the bound, where one refusal takes 0.2 ms),
            # and socket timeouts as a second line behind `REDIS_BOUND_S`. limits passes these
            # options to coredis as they are; its annotation knows only scalars.
            self._storage = aio_storage.RedisStorage(
                f"async+{settings.storage}",
                key_prefix="bff-ratelimit",
                retry_policy=NoRetryPolicy(),  # type: ignore[arg-type]
                verify_version=False,
                connect_timeout=REDIS_BOUND_S * 10,
                stream_timeout=REDIS_BOUND_S * 10,
            )
            self._async = _ASYNC[settings.strategy](self._storage)

    async def check(self, key: str, *, budget_s: float | None = None) -> None:
        """Count one request for `key`; raise `RateLimited` when its allowance is spent.

        `budget_s`: the time the request has left; Redis is given no more than that."""
        if self._sync is not None:
            if self._sync.hit(self._item, key):
                return
            reset_at, remaining = self._sync.get_window_stats(self._item, key)
        else:
            stats = await self._shared_stats(key, budget_s)
            if stats is None:
                return
            reset_at, remaining = stats
        reset_s = str(max(1, math.ceil(reset_at - time.time())))
        metrics.edge_rejections("rate_limited").inc()
        raise RateLimited(
            f"at most {self._item.amount} requests per {self._item.multiples} s",
            headers={
                "Retry-After": reset_s,
                "RateLimit-Limit": self._limit,
                "RateLimit-Remaining": str(max(0, remaining)),
                "RateLimit-Reset": reset_s,
            },
        )

    async def _shared_stats(self, key: str, budget_s: float | None) -> tuple[float, int] | None:
        """Through Redis: None when the request may pass (within its allowance, or Redis
        failed or was late: fail open), else the window's (reset time, remaining)."""
        assert self._async is not None
        if self._failures >= FAIL_MAX and time.monotonic() < self._paused_until:
            return None
        bound = REDIS_BOUND_S if budget_s is None else max(0.0, min(REDIS_BOUND_S, budget_s))
        try:
            async with asyncio.timeout(bound):
                allowed = await self._async.hit(self._item, key)
                stats = None if allowed else await self._async.get_window_stats(self._item, key)
        except TimeoutError as exc:
            if bound >= REDIS_BOUND_S:  # else the request's short budget cut it, not Redis
                self._failed(exc)
            return None
        except Exception as exc:  # the storage's errors are many (OSError, coredis...)
            self._failed(exc)
            return None
        self._failures = 0
        return None if stats is None else (stats.reset_time, stats.remaining)

    def _failed(self, exc: BaseException) -> None:
        self._failures += 1
        if self._failures >= FAIL_MAX:
            self._paused_until = time.monotonic() + PAUSE_S
            log.warning(
                "rate_limit_storage_failed", error=repr(exc), fail_open=True, pause_s=PAUSE_S
            )

    async def close(self) -> None:
        if self._storage is not None:
            redis_pool_of(self._storage).disconnect()
