"""Three BFF instances behind a real nginx sharing a real redis-server (deploy/cluster.py):
instances die under steady load and no client request fails."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from deploy_support import require_tool

from deploy.cluster import Cluster, Ports, running

pytestmark = pytest.mark.slow

RATE_PER_S = 50
DURATION_S = 10.0
SIGTERM_AT_S = 3.0
SIGKILL_AT_S = 5.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, Path]]:
    require_tool("nginx")
    require_tool("redis-server")
    log = tmp_path / "cluster.log"
    with log.open("w") as sink, running(Ports.free(), sink) as started:
        yield started, log


async def steady_load(
    session: aiohttp.ClientSession, url: str, events: dict[float, tuple[str, int]], c: Cluster
) -> list[tuple[float, int | str]]:
    """RATE_PER_S requests a second, each on its own schedule (an open loop: a slow answer
    does not delay the next request); `events` fire at their second."""
    results: list[tuple[float, int | str]] = []

    async def one(i: int) -> None:
        started = time.monotonic()
        try:
            async with session.get(f"{url}/product-details/P{i % 100}") as resp:
                await resp.read()
                outcome: int | str = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = repr(exc)
        results.append((time.monotonic() - started, outcome))

    tasks = []
    pending = sorted(events.items())
    start = time.monotonic()
    for i in range(int(RATE_PER_S * DURATION_S)):
        at = start + i / RATE_PER_S
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        while pending and pending[0][0] <= i / RATE_PER_S:
            _, (name, sig) = pending.pop(0)
            c.signal(name, sig)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return results


class TestFailover:
    """nginx sends a request another replica's way when one is draining or gone."""

    async def test_no_request_fails_when_instances_are_stopped_and_killed(
        self, cluster: tuple[Cluster, Path]
    ) -> None:
        c, log = cluster
        events = {SIGTERM_AT_S: ("bff-1", signal.SIGTERM), SIGKILL_AT_S: ("bff-2", signal.SIGKILL)}
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"{c.url}/product-details/warmup") as resp:
                assert resp.status == 200
            results = await steady_load(session, c.url, events, c)
        failed = [outcome for _, outcome in results if outcome != 200]
        latencies = sorted(d for d, _ in results)
        p99_ms = latencies[int(len(latencies) * 0.99) - 1] * 1000
        print(f"failover: sent {len(results)}, failed {len(failed)}, p99 {p99_ms:.0f} ms")
        assert len(results) == RATE_PER_S * DURATION_S
        assert failed == [], log.read_text()[-4000:]
        # The instances really went: one drained and exited 0, one was killed.
        assert c.processes["bff-1"].wait(timeout=20) == 0
        assert c.processes["bff-2"].wait(timeout=5) == -signal.SIGKILL
        assert c.processes["bff-3"].poll() is None
