"""The Redis tier against a real redis-server: shared values, and every failure a quick miss."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from cache_support import RedisServer, free_port, junk_server

from bff.cache.redis_tier import FAIL_MAX, PAUSE_S, RedisTier
from bff.settings import CacheSettings

TIMEOUT_S = 0.05  # wide for a loaded test machine; production uses a few ms
# What "within the bound" allows on top of it: a loaded machine's late timers, far less than
# the next figure a broken bound would give (the writes' 10 x TIMEOUT_S, or no bound at all).
LATE_S = 0.1


def miss_within(started: float, bound_s: float) -> None:
    took = time.monotonic() - started
    assert took < bound_s + LATE_S, f"{took:.3f} s for a lookup bounded at {bound_s} s"


@pytest.fixture
async def tier(redis_server: RedisServer) -> AsyncIterator[RedisTier]:
    t = RedisTier(redis_server.url, timeout_s=TIMEOUT_S, prefix="test:")
    try:
        yield t
    finally:
        await t.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestSharedValues:
    """What one tier writes another reads; values expire with their TTL."""

    async def test_put_then_get_from_another_client(
        self, tier: RedisTier, redis_server: RedisServer
    ) -> None:
        tier.put_later("k", b"value", ttl_s=30)
        await tier.flush()
        other = RedisTier(redis_server.url, timeout_s=TIMEOUT_S, prefix="test:")
        try:
            assert await other.get("k") == b"value"
            assert await other.get("absent") is None
        finally:
            await other.close()

    async def test_ttl(self, tier: RedisTier) -> None:
        tier.put_later("short", b"v", ttl_s=0.05)
        await tier.flush()
        await asyncio.sleep(0.2)
        assert await tier.get("short") is None

    async def test_drop(self, tier: RedisTier) -> None:
        tier.put_later("k", b"v", ttl_s=30)
        await tier.flush()
        tier.drop_later("k")
        await tier.flush()
        assert await tier.get("k") is None

    async def test_a_lookup_cut_short_never_leaks_into_the_next(self, tier: RedisTier) -> None:
        """A lookup cancelled mid-flight (the request's deadline) leaves no reply behind on
        the pooled connection for the next lookup to read as its own."""
        for i in range(20):
            tier.put_later(f"k{i}", f"v{i}".encode() * 2000, ttl_s=30)
        await tier.flush()
        cut = 0
        for n in range(200):
            i = n % 20
            if n % 2 == 0:
                try:
                    await asyncio.wait_for(tier.get(f"k{i}"), 0.00002)
                except TimeoutError:
                    cut += 1
            else:
                assert await tier.get(f"k{i}") == f"v{i}".encode() * 2000
        assert cut > 0


class TestFailures:
    """A dead, killed or garbage-speaking Redis is a miss within the timeout, then skipped."""

    async def test_redis_killed_mid_run(self, redis_server: RedisServer) -> None:
        errors: list[str] = []
        tier = RedisTier(redis_server.url, timeout_s=TIMEOUT_S, on_error=errors.append)
        try:
            tier.put_later("k", b"v", ttl_s=30)
            await tier.flush()
            assert await tier.get("k") == b"v"
            redis_server.kill()
            for _ in range(FAIL_MAX + 5):
                started = time.monotonic()
                assert await tier.get("k") is None
                miss_within(started, TIMEOUT_S)
            assert len(errors) == FAIL_MAX  # then skipped: no more attempts
            assert not tier.available
        finally:
            await tier.close()

    async def test_comes_back_after_the_pause(self, redis_server: RedisServer) -> None:
        clock = FakeClock()
        tier = RedisTier(redis_server.url, timeout_s=TIMEOUT_S, clock=clock)
        try:
            redis_server.kill()
            for _ in range(FAIL_MAX):
                assert await tier.get("k") is None
            assert not tier.available
            redis_server.start()
            clock.now += PAUSE_S
            assert tier.available
            tier.put_later("k", b"back", ttl_s=30)
            await tier.flush()
            assert await tier.get("k") == b"back"
        finally:
            await tier.close()

    async def test_nothing_listening(self) -> None:
        """A refused connection: a miss at once, the write dropped, both counted."""
        errors: list[str] = []
        tier = RedisTier(
            f"redis://127.0.0.1:{free_port()}", timeout_s=TIMEOUT_S, on_error=errors.append
        )
        try:
            started = time.monotonic()
            assert await tier.get("k") is None
            miss_within(started, TIMEOUT_S)
            tier.put_later("k", b"v", ttl_s=30)
            await tier.flush()
            assert errors == ["get", "set"]
            assert tier.available  # two errors: not yet skipped
        finally:
            await tier.close()

    async def test_a_silent_redis_is_a_miss_within_the_default_bound(
        self, redis_server: RedisServer
    ) -> None:
        """A stopped redis-server (SIGSTOP: the kernel accepts, nothing answers), behind a tier
        with the default bound: a miss after 5 ms, as docs/caching.md promises."""
        bound_s = CacheSettings().redis_timeout_s
        assert bound_s == 0.005
        tier = RedisTier(redis_server.url, timeout_s=bound_s)
        try:
            assert await tier.get("warm") is None  # connected, while Redis still answers
            with redis_server.stopped():
                started = time.monotonic()
                assert await tier.get("k") is None
                miss_within(started, bound_s)
        finally:
            await tier.close()

    async def test_errors_among_successes_never_pause_the_tier(
        self, tier: RedisTier, redis_server: RedisServer
    ) -> None:
        """Twice as many errors as it takes to pause, but never FAIL_MAX in a row: each
        success starts the count again, so Redis is still asked."""
        tier.put_later("k", b"v", ttl_s=30)
        await tier.flush()
        for _ in range(2 * FAIL_MAX):
            with redis_server.stopped():
                assert await tier.get("k") is None  # late: an error
            assert await tier.get("k") == b"v"
        assert tier.available

    @pytest.mark.parametrize(
        "reply",
        [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"$5\r\nab", b"\x00\xff" * 100, b"-ERR no\r\n", b""],
        ids=["http", "truncated", "binary", "error", "silent"],
    )
    async def test_garbage_server_is_a_miss(self, reply: bytes) -> None:
        server = await junk_server(reply)
        port = server.sockets[0].getsockname()[1]
        tier = RedisTier(f"redis://127.0.0.1:{port}", timeout_s=TIMEOUT_S)
        try:
            started = time.monotonic()
            assert await tier.get("k") is None
            miss_within(started, TIMEOUT_S)
        finally:
            await tier.close()
            server.close()
            await server.wait_closed()

    async def test_a_value_of_the_wrong_type_is_a_miss(
        self, tier: RedisTier, redis_server: RedisServer
    ) -> None:
        import coredis

        raw = coredis.Redis.from_url(redis_server.url)
        await raw.lpush("test:list", ["x"])
        raw.connection_pool.disconnect()
        assert await tier.get("list") is None
