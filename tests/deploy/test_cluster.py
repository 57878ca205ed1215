"""Three BFF instances behind a real nginx sharing a real redis-server (deploy/cluster.py):
instances die under steady load and no client request fails."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from deploy_support import require_tool
from process_support import run_to_exit

from deploy.cluster import Cluster, ClusterError, running
from deploy.topology import Ports

RATE_PER_S = 50
DURATION_S = 10.0
SIGTERM_AT_S = 3.0
SIGKILL_AT_S = 5.0


LIMIT_PER_S = 20


class TestStartUp:
    """A port already taken stops the cluster before it starts anything."""

    def test_a_busy_port_is_named_and_nothing_starts(self, tmp_path: Path) -> None:
        ports = Ports.free()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", ports.admin[1]))
            taken.listen()
            c = Cluster(ports, tmp_path, io.StringIO(), dict(os.environ))
            with pytest.raises(ClusterError, match=f"ports already in use: {ports.admin[1]}$"):
                c.start()
        assert c.processes == {}

    def test_an_invalid_cluster_port_exits_2_with_one_line(self) -> None:
        result = run_to_exit(["-m", "deploy.cluster"], {"BFF_CLUSTER_PORT": "eighty"})
        assert result.returncode == 2
        assert result.stderr.startswith("make cluster: BFF_CLUSTER_PORT:")
        assert result.stderr.count("\n") == 1


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Cluster, Path]]:
    """The cluster; a test may pass extra BFF_* settings through `indirect` parametrisation."""
    require_tool("nginx")
    require_tool("redis-server")
    extra: dict[str, str] = getattr(request, "param", {})
    log = tmp_path / "cluster.log"
    with log.open("w") as sink, running(Ports.free(), sink, {**os.environ, **extra}) as started:
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


@pytest.mark.slow
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
        # A killed instance can be started again, and serves.
        c.restart_bff(1)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{c.ports.bff[1]}/product-details/P1") as resp,
        ):
            assert resp.status == 200


@pytest.mark.slow
class TestSharedRateLimit:
    """One client's limit holds across all instances: they count in the same Redis."""

    @pytest.mark.parametrize(
        "cluster",
        [{"BFF_RATE_LIMIT_RATE": str(LIMIT_PER_S), "BFF_RATE_LIMIT_BURST": str(LIMIT_PER_S)}],
        indirect=True,
    )
    async def test_a_limit_of_n_per_second_holds_across_three_instances(
        self, cluster: tuple[Cluster, Path]
    ) -> None:
        c, log = cluster
        seconds, rate = 5, 3 * LIMIT_PER_S  # three times the limit: each instance sees ~N/s
        # The client's address as nginx passes it on (X-Forwarded-For, trusted from loopback).
        client = {"X-Forwarded-For": "203.0.113.7"}
        statuses: list[int] = []

        async def one(session: aiohttp.ClientSession, i: int) -> None:
            async with session.get(f"{c.url}/product-details/P{i}", headers=client) as resp:
                statuses.append(resp.status)

        async with aiohttp.ClientSession() as session:
            start = time.monotonic()
            tasks = []
            for i in range(seconds * rate):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                tasks.append(asyncio.create_task(one(session, i)))
            await asyncio.gather(*tasks)
            # Another client is not held back by the first one's limit.
            other = {"X-Forwarded-For": "203.0.113.8"}
            async with session.get(f"{c.url}/product-details/P1", headers=other) as resp:
                assert resp.status == 200
        allowed = statuses.count(200)
        print(f"rate limit: {len(statuses)} sent in {seconds} s, {allowed} allowed")
        assert set(statuses) <= {200, 429}, log.read_text()[-4000:]
        # A moving window of N per second over `seconds`: N per second, within 10 %.
        assert abs(allowed - LIMIT_PER_S * seconds) <= 0.1 * LIMIT_PER_S * seconds
