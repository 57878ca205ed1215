"""Per-client rate limit on the `limits` library: `burst` requests in a `burst/rate` s window.

Two storages, chosen by BFF_RATE_LIMIT_STORAGE:

- `memory://` (default): per worker, limits' *synchronous* MemoryStorage and strategies. They
  do no I/O, so calling them on the event loop never blocks, and they are far cheaper than the
  async MemoryStorage (measured, 1000 clients: about 6 µs a hit against 70-120 µs, because the
  async one schedules an expiry sweep, and for the moving window a thread hop, on every hit).
  The sync storage has a thread of its own, though: see `_LoopMemoryStorage`.
- `redis://host:port`: limits' async Redis storage (coredis), one limit shared by every
  worker and instance. If Redis fails we let the request through (fail open: the limiter
  must not become the outage) and skip Redis for a second, logging once per such pause.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerSecond, storage, strategies
from limits.aio import storage as aio_storage
from limits.aio import strategies as aio_strategies

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
_FAIL_OPEN_PAUSE_S = 1.0
_SWEEP_S = 1.0


class _LoopMemoryStorage(storage.MemoryStorage):
    """limits' MemoryStorage without its expiry thread.

    Before every hit, MemoryStorage starts a `threading.Timer(0.01)` that trims expired
    windows, unless one is still alive: under load, a new thread every 10 ms, each of which
    must take the GIL from the event loop. Profiled under wrk at 64 connections that cost one
    worker about a quarter of its throughput (issue 5). Here the same trim runs inline, on the
    loop, at most once per `_SWEEP_S`. Hits stay exact in between (both strategies check the
    times themselves); the trim only bounds memory, to about `burst` entries per client.
    """

    def __init__(self) -> None:
        super().__init__()
        self.timer.cancel()  # the one MemoryStorage.__init__ started
        self._next_sweep = 0.0

    # limits calls this hook (its private `__schedule_expiry`) before every hit; pinned by a test.
    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_S
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


class RateLimiter:
    __slots__ = ("_async", "_item", "_limit", "_paused_until", "_storage", "_sync")

    def __init__(self, settings: RateLimitSettings) -> None:
        self._item: RateLimitItem = RateLimitItemPerSecond(settings.burst, settings.window_s)
        self._limit = str(settings.burst)
        self._sync: strategies.RateLimiter | None = None
        self._async: aio_strategies.RateLimiter | None = None
        self._storage: aio_storage.RedisStorage | None = None
        self._paused_until = 0.0
        if settings.storage == "memory://":
            self._sync = _SYNC[settings.strategy](_LoopMemoryStorage())
        else:
            self._storage = aio_storage.RedisStorage(
                f"async+{settings.storage}", key_prefix="bff-ratelimit"
            )
            self._async = _ASYNC[settings.strategy](self._storage)

    async def check(self, key: str) -> None:
        """Count one request for `key`; raise `RateLimited` when its allowance is spent."""
        if self._sync is not None:
            if self._sync.hit(self._item, key):
                return
            reset_at, remaining = self._sync.get_window_stats(self._item, key)
        else:
            assert self._async is not None
            if time.monotonic() < self._paused_until:
                return
            try:
                if await self._async.hit(self._item, key):
                    return
                reset_at, remaining = await self._async.get_window_stats(self._item, key)
            except Exception as exc:  # the storage's errors are many (OSError, coredis...)
                self._paused_until = time.monotonic() + _FAIL_OPEN_PAUSE_S
                log.warning("rate_limit_storage_failed", error=repr(exc), fail_open=True)
                return
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

    async def close(self) -> None:
        if self._storage is not None:
            client = getattr(self._storage.bridge, "storage", None)
            pool = getattr(client, "connection_pool", None)
            if pool is not None:
                pool.disconnect()
