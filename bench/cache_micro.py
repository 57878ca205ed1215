"""Micro-benchmark of the part cache and the answer finishing: CPU per operation, in µs.

    .venv/bin/python -m bench.cache_micro

Starts a redis-server of its own on a free loopback port (skipped when none is installed).
Figures are the best of five rounds: they are costs on this machine, not latencies.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable

import coredis
import msgspec
from multidict import CIMultiDict

from bff.answer.conditional import etag_of, none_match
from bff.answer.encoding import compress
from bff.cache import PartCache, PartRequest
from bff.cache.flow import serve
from bff.cache.redis_tier import RedisTier
from bff.settings.cache import CacheSettings
from mock_services.catalogue import product_for, reviews_for

HEADERS = CIMultiDict(
    {
        "Cache-Control": "max-age=60, stale-while-revalidate=30, stale-if-error=600",
        "ETag": '"0123456789abcdef01234567"',
    }
)
BODY = msgspec.json.encode(product_for("P001"))
FORWARDED = {"X-Request-ID": "r", "Accept-Language": "en"}
KEYS = 1000


async def per_op(fn: Callable[[int], Awaitable[object]], n: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for i in range(n):
            await fn(i)
        best = min(best, (time.perf_counter() - started) / n * 1e6)
    return best


def sync_op(fn: Callable[[], object], n: int) -> float:
    async def run(_: int) -> None:
        fn()

    return asyncio.run(per_op(run, n))


async def memory() -> None:
    cache = PartCache(CacheSettings())
    reqs = [PartRequest.of("product", f"P{i:04d}", FORWARDED) for i in range(KEYS)]
    for r in reqs:
        cache.store(r, await cache.lookup(r), HEADERS, BODY)
    decode = msgspec.json.Decoder().decode

    async def lookup(i: int) -> object:
        return await cache.lookup(reqs[i % KEYS])

    async def build_and_lookup(i: int) -> object:
        return await cache.lookup(PartRequest.of("product", f"P{i % KEYS:04d}", FORWARDED))

    async def fresh(i: int) -> object:
        return await serve(cache, reqs[i % KEYS], _no_call, decode)

    async def store(i: int) -> object:
        r = reqs[i % KEYS]
        return cache.store(r, await cache.lookup(r), HEADERS, BODY)

    print(f"memory lookup, FRESH                     {await per_op(lookup, 20_000):7.2f}")
    print(f"PartRequest.of + lookup                  {await per_op(build_and_lookup, 20_000):7.2f}")
    print(f"serve() FRESH, msgspec decode included   {await per_op(fresh, 20_000):7.2f}")
    print(f"lookup + store                           {await per_op(store, 5_000):7.2f}")


async def _no_call(etag: str | None) -> object:
    raise AssertionError("a fresh copy makes no call")


async def redis(url: str) -> None:
    # A generous timeout: this measures the cost of a hit, and one read caught by a 50 ms
    # stall of this process (a collection) would be a miss that fails the run.
    writer = RedisTier(url, timeout_s=1.0)
    first = PartCache(CacheSettings(), redis=writer)
    reqs = [PartRequest.of("product", f"P{i:04d}", FORWARDED) for i in range(KEYS)]
    for n, r in enumerate(reqs):
        first.store(r, await first.lookup(r), HEADERS, BODY)
        if n % 100 == 99:
            await writer.flush()  # the tier drops writes past 256 pending
    await writer.flush()
    best = float("inf")
    for _ in range(3):  # a new worker each round: memory empty, shape and entry from Redis
        other = PartCache(CacheSettings(), redis=RedisTier(url, timeout_s=1.0))
        started = time.perf_counter()
        for r in reqs:
            assert (await other.lookup(r)).entry is not None
        best = min(best, (time.perf_counter() - started) / KEYS * 1e6)
        await other.close()
    print(f"Redis hit, cold worker (2 round trips)   {best:7.1f}")
    reader = RedisTier(url, timeout_s=1.0)

    async def get(i: int) -> object:
        return await reader.get(f"product/P{i % KEYS:04d}|shape")

    print(f"RedisTier.get (1 round trip)             {await per_op(get, 2_000):7.1f}")
    await reader.close()
    await first.close()


async def dead_redis() -> None:
    url = f"redis://127.0.0.1:{_free_port()}"
    cache = PartCache(CacheSettings(), redis=RedisTier(url, timeout_s=0.005))

    async def lookup(i: int) -> object:
        return await cache.lookup(PartRequest.of("product", f"Z{i}", {}))

    print(f"dead Redis, breaker open after 3 errors  {await per_op(lookup, 20_000):7.2f}")
    await cache.close()


def answer() -> None:
    body = msgspec.json.encode({"product": product_for("P004"), "reviews": reviews_for("P004")})
    big = body * 3
    many = ", ".join(f'"{i:x}"' for i in range(1000))
    tag = etag_of(body)
    rows = [
        (f"ETag of {len(body)} B", sync_op(lambda: etag_of(body), 20_000)),
        ("If-None-Match, 1000 tags, no match", sync_op(lambda: none_match(many, tag), 20_000)),
        (f"br quality 4, {len(big)} B", sync_op(lambda: compress(big, "br"), 2_000)),
        (f"gzip level 5, {len(big)} B", sync_op(lambda: compress(big, "gzip"), 2_000)),
    ]
    for label, cost in rows:
        print(f"{label:40} {cost:7.2f}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _until_answering(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until the server answers PING (a figure taken while it loads would be no figure)."""
    client: coredis.Redis[bytes] = coredis.Redis.from_url(url, connect_timeout=0.2)
    try:
        for _ in range(100):  # at most ~5 s
            if proc.poll() is not None:
                raise SystemExit(f"redis-server exited with {proc.returncode}")
            try:
                await client.ping()
                return
            except (coredis.exceptions.ConnectionError, OSError):
                await asyncio.sleep(0.05)
        raise SystemExit("redis-server did not answer PING within 5 s")
    finally:
        client.connection_pool.disconnect()


def main() -> None:
    print("µs per operation (best of 5)")
    asyncio.run(memory())
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server not installed: Redis figures skipped")
    else:
        port = _free_port()
        args = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}"
            asyncio.run(_until_answering(url, proc))
            asyncio.run(redis(url))
        finally:
            proc.kill()
            proc.wait()
    asyncio.run(dead_redis())
    answer()


if __name__ == "__main__":
    main()
