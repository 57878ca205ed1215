"""The Redis tier: a second tier shared by every worker and instance, that may fail at will.

A lookup costs one round trip (~120 µs measured on loopback) and is made only after a
memory miss. Redis is never allowed to hurt a request:

- each operation is bounded by `timeout_s` (a few ms); past it, or on any error or a value
  we cannot read, the answer is a miss;
- after `FAIL_MAX` errors in a row Redis is skipped for `PAUSE_S`, so a dead Redis costs
  a request nothing at all (one lookup then probes it again);
- writes go out in the background, at most `MAX_PENDING_WRITES` at once (more are dropped:
  a cache that cannot keep up with its writes must not pile up tasks).

The client is coredis, which `limits` already brings for shared rate limits: one Redis
client in the project. Its own retries are off (a retry would spend the budget of the very
request the miss is meant to protect).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

import coredis
from coredis.retry import NoRetryPolicy

__all__ = ["FAIL_MAX", "MAX_PENDING_WRITES", "PAUSE_S", "RedisTier"]

FAIL_MAX = 3
PAUSE_S = 2.0
MAX_PENDING_WRITES = 256
# Writes have no request waiting on them: they may take longer than a lookup.
WRITE_TIMEOUT_FACTOR = 10


class RedisTier:
    """Bytes by key in one Redis database; every method answers or gives up within its bound."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        prefix: str = "bff:cache:",
        on_error: Callable[[str], None] = lambda op: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client: coredis.Redis[bytes] = coredis.Redis.from_url(
            url,
            decode_responses=False,
            verify_version=False,
            retry_policy=NoRetryPolicy(),
            stream_timeout=timeout_s * WRITE_TIMEOUT_FACTOR,
            connect_timeout=timeout_s * WRITE_TIMEOUT_FACTOR,
        )
        self._timeout_s = timeout_s
        self._prefix = prefix
        self._on_error = on_error
        self._clock = clock
        self._failures = 0
        self._paused_until = 0.0
        self._writes: set[asyncio.Task[None]] = set()

    @property
    def available(self) -> bool:
        """False while Redis is being skipped after repeated errors."""
        return self._failures < FAIL_MAX or self._clock() >= self._paused_until

    async def get(self, key: str) -> bytes | None:
        """The value stored under `key`; None when absent, late, failing or skipped."""
        if not self.available:
            return None
        try:
            async with asyncio.timeout(self._timeout_s):
                value = await self._client.get(self._prefix + key)
        except Exception:  # timeouts, resets, protocol garbage: every one of them is a miss
            self._failed("get")
            return None
        self._failures = 0
        return value if isinstance(value, bytes) else None

    def put_later(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store `value` for `ttl_s` seconds in the background (dropped when skipped or busy)."""
        if ttl_s > 0:
            ttl_ms = max(1, math.ceil(ttl_s * 1000))
            self._later("set", lambda: self._client.set(self._prefix + key, value, px=ttl_ms))

    def drop_later(self, key: str) -> None:
        """Delete `key` in the background (a copy that must not be served any more)."""
        self._later("del", lambda: self._client.delete([self._prefix + key]))

    async def flush(self) -> None:
        """Wait for the writes in flight (tests, and shutdown)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._writes):
            task.cancel()
        await self.flush()
        self._client.connection_pool.disconnect()

    def _later(self, op: str, command: Callable[[], Awaitable[object]]) -> None:
        if not self.available or len(self._writes) >= MAX_PENDING_WRITES:
            return
        task = asyncio.create_task(self._write(op, command))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, op: str, command: Callable[[], Awaitable[object]]) -> None:
        try:
            async with asyncio.timeout(self._timeout_s * WRITE_TIMEOUT_FACTOR):
                await command()
        except Exception:  # see get()
            self._failed(op)
            return
        self._failures = 0

    def _failed(self, op: str) -> None:
        self._failures += 1
        if self._failures >= FAIL_MAX:
            self._paused_until = self._clock() + PAUSE_S
        self._on_error(op)
