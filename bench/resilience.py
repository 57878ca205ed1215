"""Resilience figures with the default policy: `python -m bench.resilience`.

Runs the BFF and the mock services in this process (loopback), injects faults into reviews
through the mocks' API and reports: completeness under 10 % and 50 % transient 503s, call
amplification under 100 % failure (with the default breaker, and with the breaker disabled so
only the retry budget limits calls), and the time the breaker takes to detect an outage and
to recover after it. Bounded: a few hundred requests per figure, under a minute in all.
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
from mock_services import create_service_app

KINDS = ("product", "reviews", "inventory")
N = 400


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
    runners, urls = [], {}
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


async def _scenario(
    env: dict[str, str], faults: dict[str, Any], http: aiohttp.ClientSession
) -> dict[str, float]:
    async with _stack(env) as (bff, urls):
        await http.put(f"{urls['reviews']}/__faults", json=faults)
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> dict[str, Any]:
            async with sem, http.get(f"{bff}/product-details/P{i:04d}") as resp:
                body: dict[str, Any] = await resp.json()
                return body

        bodies = await asyncio.gather(*(one(i) for i in range(N)))
        async with http.get(f"{urls['reviews']}/__stats") as resp:
            calls = (await resp.json())["requests"]
        complete = sum(1 for b in bodies if not b["degraded"])
        return {"complete": complete / N, "amplification": calls / N}


async def _detect_and_recover(http: aiohttp.ClientSession) -> tuple[float, float, int]:
    async with _stack({}) as (bff, urls):

        async def reviews_reason() -> str | None:
            async with http.get(f"{bff}/product-details/P001") as resp:
                reason: str | None = (await resp.json())["degraded"].get("reviews")
                return reason

        await http.put(f"{urls['reviews']}/__faults", json={"error_rate": 1})
        started, requests = time.perf_counter(), 0
        # One request at a time, 20 ms apart, at most 10 s each way.
        for requests in range(500):  # noqa: B007 - the count is reported
            if await reviews_reason() == "circuit_open":
                break
            await asyncio.sleep(0.02)
        detect = time.perf_counter() - started
        await http.delete(f"{urls['reviews']}/__faults")
        started = time.perf_counter()
        for _ in range(500):
            if await reviews_reason() is None:
                break
            await asyncio.sleep(0.02)
        return detect, time.perf_counter() - started, requests


async def main() -> None:
    configure_logging("ERROR", "console")
    async with aiohttp.ClientSession() as http:
        print(f"reviews fault, {N} requests, 16 concurrent, default policy unless noted\n")
        print("| scenario | complete answers | reviews calls per request |")
        print("|---|--:|--:|")
        cases = [
            ("10% transient 503", {}, {"error_rate": 0.1, "seed": 1}),
            ("50% transient 503", {}, {"error_rate": 0.5, "seed": 1}),
            (
                "50% transient 503, breaker disabled",
                {"BFF_REVIEWS_BREAKER_MIN_CALLS": "1000000"},
                {"error_rate": 0.5, "seed": 1},
            ),
            ("100% 503", {}, {"error_rate": 1}),
            (
                "100% 503, breaker disabled",
                {"BFF_REVIEWS_BREAKER_MIN_CALLS": "1000000"},
                {"error_rate": 1},
            ),
        ]
        for name, env, faults in cases:
            r = await _scenario(env, faults, http)
            print(f"| {name} | {r['complete']:.1%} | {r['amplification']:.3f} |")
        detect, recover, requests = await _detect_and_recover(http)
        print(
            f"\nbreaker: outage detected after {requests} failed requests ({detect * 1000:.0f} ms "
            f"at one request per 20 ms); recovered {recover * 1000:.0f} ms after the service "
            "healed (reset timeout 3 s, then one probe)"
        )


if __name__ == "__main__":
    asyncio.run(main())
