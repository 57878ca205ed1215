"""The loads wrk cannot make: small aiohttp clients of the harness, each bounded in requests
and time (every request has the 2 s timeout wrk has).

- `herd`: N identical requests for one cold id, a fixed number at a time: does coalescing
  serve all of them with one product call per worker?
- `polite`: one request every 100 ms from another loopback address (127.0.0.2) while wrk
  floods from 127.0.0.1: what share of a well-behaved client's answers are 200?
- `stream`: incremental answers (`Accept: application/x-ndjson`), distinct ids, a fixed number
  at a time: when does the first line arrive, and the last?
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=2.0)
NDJSON = "application/x-ndjson"
_PRODUCT_DUR = re.compile(r"(?:^|,)\s*product;dur=([\d.]+)")


def percentiles(values_ms: Sequence[float]) -> dict[str, float]:
    """{n, p50, p99, max} by nearest rank (as bench/load.lua does), in ms."""
    ordered = sorted(values_ms)
    n = len(ordered)

    def at(p: float) -> float:
        return ordered[max(0, math.ceil(n * p / 100) - 1)] if n else 0.0

    return {"n": n, "p50": at(50), "p99": at(99), "max": at(100)}


@dataclass(slots=True)
class Tally:
    """What came back: statuses (and "timeout", "error"), and each answer's latency."""

    statuses: Counter[str] = field(default_factory=Counter)
    latency_ms: list[float] = field(default_factory=list)
    ok_ms: list[float] = field(default_factory=list)  # the 200s' alone
    # 503s and 429s that carried no Retry-After (the contract says every one does).
    no_retry_after: int = 0

    def answered(self, status: int, started: float, headers: Mapping[str, str]) -> None:
        took = (time.perf_counter() - started) * 1000
        self.statuses[str(status)] += 1
        self.latency_ms.append(took)
        if status == 200:
            self.ok_ms.append(took)
        if status in (429, 503) and "Retry-After" not in headers:
            self.no_retry_after += 1

    def failed(self, exc: BaseException) -> None:
        self.statuses["timeout" if isinstance(exc, TimeoutError) else "error"] += 1


async def herd(base: str, product_id: str, total: int, at_once: int) -> Tally:
    tally = Tally()
    gate = asyncio.Semaphore(at_once)
    url = f"{base}/product-details/{product_id}"
    connector = aiohttp.TCPConnector(limit=at_once)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:

        async def one() -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        tally.answered(resp.status, started, resp.headers)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    tally.failed(exc)

        await asyncio.gather(*(one() for _ in range(total)))
    return tally


async def polite(base: str, seconds: float, every_s: float, local_host: str) -> Tally:
    """One request every `every_s`, on time whatever the previous answer did (a user's
    page views do not wait for each other), ids in turn, from `local_host`."""
    tally = Tally()
    connector = aiohttp.TCPConnector(local_addr=(local_host, 0))
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:

        async def one(index: int) -> None:
            started = time.perf_counter()
            try:
                async with session.get(f"{base}/product-details/POLITE{index:05d}") as resp:
                    await resp.read()
                    tally.answered(resp.status, started, resp.headers)
            except (aiohttp.ClientError, TimeoutError) as exc:
                tally.failed(exc)

        tasks = []
        began = time.perf_counter()
        for index in range(max(1, round(seconds / every_s))):
            await asyncio.sleep(max(0.0, began + index * every_s - time.perf_counter()))
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)
    return tally


@dataclass(slots=True)
class StreamTally(Tally):
    first_ms: list[float] = field(default_factory=list)
    last_ms: list[float] = field(default_factory=list)
    product_ms: list[float] = field(default_factory=list)  # Server-Timing's product dur
    incomplete: int = 0  # 200s whose last line was not `{"done": true, ...}`


async def stream(base: str, ids: Sequence[str], at_once: int) -> StreamTally:
    tally = StreamTally()
    gate = asyncio.Semaphore(at_once)
    headers = {"Accept": NDJSON}
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:

        async def one(product_id: str) -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    async with session.get(
                        f"{base}/product-details/{product_id}", headers=headers
                    ) as resp:
                        if resp.status != 200:
                            await resp.read()
                            tally.answered(resp.status, started, resp.headers)
                            return
                        await _lines(resp, started, tally)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    tally.failed(exc)

        await asyncio.gather(*(one(i) for i in ids))
    return tally


async def _lines(resp: aiohttp.ClientResponse, started: float, tally: StreamTally) -> None:
    first = await resp.content.readline()
    tally.first_ms.append((time.perf_counter() - started) * 1000)
    timing = _PRODUCT_DUR.search(resp.headers.get("Server-Timing", ""))
    if timing:
        tally.product_ms.append(float(timing.group(1)))
    last = first
    while line := await resp.content.readline():
        last = line
    tally.last_ms.append((time.perf_counter() - started) * 1000)
    tally.answered(resp.status, started, resp.headers)
    try:
        done = json.loads(last).get("done") is True
    except (ValueError, AttributeError):
        done = False
    tally.incomplete += not done
