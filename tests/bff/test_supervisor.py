"""`python -m bff --workers 2`: the supervisor keeps its workers alive, and `/metrics` reports
the worst breaker state among the workers, whichever worker answers the scrape."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest
from bff_support import Mocks
from process_support import TIMEOUT_S, running, url_in, worker_pids
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow
OPEN = 2.0  # bff_breaker_state: 0 closed, 1 half-open, 2 open


def breaker_states(text: str) -> dict[str, float]:
    return {
        sample.labels["service"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "bff_breaker_state"
        for sample in family.samples
    }


async def replaced(supervisor: int, victim: int) -> set[int]:
    """The worker pids once two are running again and `victim` is not among them (bounded)."""
    for _ in range(int(TIMEOUT_S / 0.05)):
        now = worker_pids(supervisor)
        if len(now) == 2 and victim not in now:
            return now
        await asyncio.sleep(0.05)
    raise AssertionError(f"no replacement for worker {victim}: {worker_pids(supervisor)}")


async def get_status(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as resp:
        await resp.read()
        return resp.status


class TestBreakerGaugeAcrossWorkers:
    async def test_open_on_both_workers_reads_open_not_the_sum(
        self, mocks: Mocks, tmp_path: Path
    ) -> None:
        """Pins the gauge's aggregation over workers: the maximum (open = 2), which a sum
        (4 here) or a single worker's value (closed) would not give."""
        env = {**mocks.env(), "BFF_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
        # A 500 is final after one attempt and counts against the service: each worker's
        # breaker opens once enough of its calls failed (the default window's minimum).
        await mocks.faults("product", error_rate=1, error_status=500)
        async with running(["-m", "bff", "--port", "0"], env) as (_proc, lines):
            admin = url_in(await lines.next_matching("bff admin on"))
            url = url_in(await lines.next_matching("bff listening on"))
            # A new connection per request: SO_REUSEPORT spreads connections over the workers.
            connector = aiohttp.TCPConnector(force_close=True)
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                refused_in_a_row = 0
                for i in range(400):
                    status = await get_status(session, f"{url}/product-details/P{i}")
                    assert status in (502, 503)
                    refused_in_a_row = refused_in_a_row + 1 if status == 503 else 0
                    # 16 refusals in a row on connections spread at random over two workers:
                    # both breakers are open (one closed worker would show with p > 0.9999).
                    if refused_in_a_row == 16:
                        break
                assert refused_in_a_row == 16, "both workers' breakers opened"
                for _ in range(4):  # whichever worker answers the scrape
                    async with session.get(f"{admin}/metrics") as resp:
                        states = breaker_states(await resp.text())
                    assert states == {"product": OPEN, "reviews": 0.0, "inventory": 0.0}


class TestSupervisorRestartsAWorker:
    async def test_a_killed_worker_is_replaced(self, mocks: Mocks) -> None:
        """Pins the supervisor's restart: a worker killed by SIGKILL is replaced by a new
        process, the service keeps answering, and the death is logged."""
        env = {**mocks.env(), "BFF_WORKERS": "2", "BFF_LOG_FORMAT": "json"}
        async with running(["-m", "bff", "--port", "0"], env) as (proc, lines):
            url = url_in(await lines.next_matching("bff listening on"))
            first = worker_pids(proc.pid)
            assert len(first) == 2
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            await lines.next_matching("worker_died")
            now = await replaced(proc.pid, victim)
            assert len(now) == 2
            assert first - {victim} < now, "the other worker was left alone"
            connector = aiohttp.TCPConnector(force_close=True)
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                for i in range(10):
                    assert await get_status(session, f"{url}/product-details/P{i}") == 200
