"""Resilience figures with the default policy: `python -m bench.resilience`.

Runs the BFF and the mock services in this process (loopback), injects faults into reviews
through the mocks' API and reports: completeness and reviews calls per request under 10 %,
50 % and 100 % transient 503s; then, at 50 requests per second, how soon the breaker opens on
an outage, how many calls reach the service while it is open, and how soon answers are
complete again once the service heals. Bounded: a few hundred requests per figure, under a
minute in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from bff.app import create_app
from bff.observability.logging import configure_logging
from bff.settings import Settings
from mock_services import ServiceKind, create_service_app

KINDS: tuple[ServiceKind, ...] = ("product", "reviews", "inventory")
N = 400
RATE = 50  # requests per second in the outage scenario
OPEN_REQUESTS = 200  # sent while the breaker is open: 4 s at 50 req/s, past one reset timeout


async def _start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def _stack(env: dict[str, str]) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """Three mocks (reference latencies x 0.1) and a BFF on them: (BFF URL, mock URLs)."""
    runners: list[web.AppRunner] = []
    urls: dict[str, str] = {}
    try:
        for kind in KINDS:
            runner, urls[kind] = await _start(create_service_app(kind, latency_scale=0.1))
            runners.append(runner)
        settings = Settings.from_env(
            {f"BFF_{k.upper()}_URL": u for k, u in urls.items()}
            | {"BFF_RATE_LIMIT_RATE": "0"}
            | env
        )
        runner, bff = await _start(create_app(settings))
        runners.append(runner)
        yield bff, urls
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def _scenario(faults: dict[str, Any], http: aiohttp.ClientSession) -> dict[str, float]:
    async with _stack({}) as (bff, urls):
        await http.put(f"{urls['reviews']}/__faults", json=faults)
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> dict[str, Any]:
            async with sem, http.get(f"{bff}/product-details/P{i:04d}") as resp:
                body: dict[str, Any] = await resp.json()
                return body

        bodies = await asyncio.gather(*(one(i) for i in range(N)))
        calls = await _reviews_calls(http, urls)
        complete = sum(1 for b in bodies if not b["degraded"])
        shed = sum(1 for b in bodies if b["degraded"].get("reviews") == "circuit_open")
        return {"complete": complete / N, "amplification": calls / N, "circuit_open": shed}


async def _reviews_calls(http: aiohttp.ClientSession, urls: dict[str, str]) -> int:
    async with http.get(f"{urls['reviews']}/__stats") as resp:
        calls: int = (await resp.json())["requests"]
        return calls


async def _paced(bff: str, http: aiohttp.ClientSession, until: str | None, limit: int) -> int:
    """Requests at 50 per second, one at a time, until reviews' reason is `until` (None:
    complete) or `limit` requests were sent; returns how many were sent."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    for sent in range(1, limit + 1):
        async with http.get(f"{bff}/product-details/P001") as resp:
            reason = (await resp.json())["degraded"].get("reviews")
        if reason == until:
            return sent
        next_at += 1 / RATE
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    return limit


async def _outage(http: aiohttp.ClientSession) -> dict[str, float]:
    """100 % failure at 50 req/s: time to open, calls while open, time to close once healed."""
    async with _stack({}) as (bff, urls):
        await http.put(f"{urls['reviews']}/__faults", json={"error_rate": 1})
        started = time.perf_counter()
        before_open = await _paced(bff, http, "circuit_open", 500)
        detect = time.perf_counter() - started
        calls_at_open = await _reviews_calls(http, urls)
        await _paced(bff, http, "never", OPEN_REQUESTS)
        calls_open = await _reviews_calls(http, urls) - calls_at_open
        await http.delete(f"{urls['reviews']}/__faults")
        started = time.perf_counter()
        await _paced(bff, http, None, 500)
        recover = time.perf_counter() - started
        return {
            "requests_to_open": before_open,
            "detect_s": detect,
            "calls_per_20": calls_open / OPEN_REQUESTS * 20,
            "recover_s": recover,
        }


async def main() -> None:
    configure_logging("ERROR", "console")
    async with aiohttp.ClientSession() as http:
        print(f"reviews fault, {N} requests, 16 concurrent, default policy\n")
        print("| transient 503s | complete answers | reviews calls per request | circuit_open |")
        print("|---|--:|--:|--:|")
        for rate in (0.1, 0.5, 1.0):
            r = await _scenario({"error_rate": rate, "seed": 1}, http)
            print(
                f"| {rate:.0%} | {r['complete']:.1%} | {r['amplification']:.3f} "
                f"| {r['circuit_open']:.0f} |"
            )
        o = await _outage(http)
        reset = Settings.from_env({}).downstream("reviews").breaker.reset_timeout_s
        print(
            f"\nreviews down, {RATE} req/s one at a time: breaker open after "
            f"{o['requests_to_open']:.0f} requests ({o['detect_s'] * 1000:.0f} ms); while open, "
            f"{o['calls_per_20']:.2f} reviews calls per 20 requests ({OPEN_REQUESTS} requests); "
            f"complete again {o['recover_s'] * 1000:.0f} ms after the service healed "
            f"(reset timeout {reset:.0f} s, then one probe)"
        )


if __name__ == "__main__":
    asyncio.run(main())
