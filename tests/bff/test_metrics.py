"""`/metrics`: Prometheus text that counts what happened, in one worker and across two.

In-process apps share prometheus_client's global registry, so these tests compare figures
before and after what they do.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest
from bff_support import AdminFor, BffClient, MakeBff, Mocks
from process_support import TIMEOUT_S, running, url_in
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from bff.observability.metrics import BUCKETS

Figures = dict[tuple[str, frozenset[tuple[str, str]]], float]
ROUTE = "/product-details/{id}"


def parse(text: str) -> Figures:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(figures: Figures, name: str, **labels: str) -> float:
    return figures.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: BffClient) -> Figures:
    async with client.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(await resp.text())


def delta(before: Figures, after: Figures, name: str, **labels: str) -> float:
    return get(after, name, **labels) - get(before, name, **labels)


class TestSingleWorker:
    async def test_requests_and_calls_are_counted(
        self, bff: BffClient, admin_for: AdminFor
    ) -> None:
        admin = await admin_for(bff)
        before = await scrape(admin)
        for i in range(5):
            async with bff.get(f"/product-details/P00{i}") as resp:
                assert resp.status == 200
        async with bff.get("/product-details/bad!") as resp:
            assert resp.status == 400
        after = await scrape(admin)
        ok = {"route": ROUTE, "method": "GET", "status": "200"}
        assert delta(before, after, "bff_request_duration_seconds_count", **ok) == 5
        bad = {**ok, "status": "400"}
        assert delta(before, after, "bff_request_duration_seconds_count", **bad) == 1
        for service in ("product", "reviews", "inventory"):
            labels = {"service": service, "outcome": "ok"}
            assert delta(before, after, "bff_downstream_duration_seconds_count", **labels) == 5
            assert delta(before, after, "bff_downstream_attempts_total", **labels) == 5
            assert get(after, "bff_breaker_state", service=service) == 0
        # A scrape is not an API request (it comes through the admin listener).
        assert get(after, "bff_in_flight_requests") == 0

    async def test_retries_degraded_answers_and_breaker_state(
        self, make_bff: MakeBff, mocks: Mocks, admin_for: AdminFor
    ) -> None:
        await mocks.faults("reviews", error_rate=1)
        bff = await make_bff({"reviews.breaker.min_calls": 2}, BFF_DEADLINE_MS=400)
        admin = await admin_for(bff)
        before = await scrape(admin)
        async with bff.get("/product-details/P001") as resp:
            assert (await resp.json())["degraded"] == {"reviews": "unavailable"}
        after = await scrape(admin)
        sent = await mocks.requests("reviews")
        assert sent >= 2
        failed = {"service": "reviews", "outcome": "unavailable"}
        assert delta(before, after, "bff_downstream_attempts_total", **failed) == sent
        assert delta(before, after, "bff_downstream_retries_total", service="reviews") == sent - 1
        assert delta(before, after, "bff_downstream_duration_seconds_count", **failed) == 1
        reason = {"part": "reviews", "reason": "unavailable"}
        assert delta(before, after, "bff_degraded_total", **reason) == 1
        assert get(after, "bff_breaker_state", service="reviews") == 2  # open

    async def test_buckets_fit_the_budget(self, bff: BffClient, admin_for: AdminFor) -> None:
        figures = await scrape(await admin_for(bff))
        les = {
            dict(labels)["le"]
            for name, labels in figures
            if name == "bff_request_duration_seconds_bucket"
        }
        assert {"0.05", "0.1", "0.25", "0.5", "+Inf"} <= les
        assert sum(1 for b in BUCKETS if b <= 0.5) >= 10  # most resolution inside the budget

    async def test_unknown_routes_and_methods_do_not_mint_labels(
        self, bff: BffClient, admin_for: AdminFor
    ) -> None:
        admin = await admin_for(bff)
        before = await scrape(admin)
        async with bff.get("/a/random/path/123") as resp:
            assert resp.status == 404
        async with bff.request("PROPFIND", "/product-details/P001") as resp:
            assert resp.status == 405
        after = await scrape(admin)
        labels = {"route": "unmatched", "method": "GET", "status": "404"}
        assert delta(before, after, "bff_request_duration_seconds_count", **labels) == 1
        assert not [k for k in after if ("route", "/a/random/path/123") in k[1]]
        other = {"route": "unmatched", "method": "_OTHER", "status": "405"}
        assert delta(before, after, "bff_request_duration_seconds_count", **other) == 1


@pytest.mark.slow
class TestTwoWorkers:
    """`python -m bff --workers 2`: any worker's scrape has every worker's figures."""

    async def test_counts_match_whichever_worker_answers(
        self, mocks: Mocks, tmp_path: Path
    ) -> None:
        metrics_dir = tmp_path / "metrics"
        metrics_dir.mkdir()
        (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # an earlier run's file
        env = {**mocks.env(), "BFF_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        # This pins the counting across workers, not the latency: quick mocks and a deadline
        # no loaded machine reaches (a 500 ms one once ended a request in a 504 here).
        env |= {"BFF_DEADLINE_MS": "10000", "BFF_PRODUCT_TIMEOUT_MS": "8000"}
        for kind in ("product", "reviews", "inventory"):
            await mocks.faults(kind, latency_ms=1)
        async with running(["-m", "bff", "--port", "0"], env) as (proc, lines):
            admin = url_in(await lines.next_matching("bff admin on"))
            url = url_in(await lines.next_matching("bff listening on"))
            sent = 20
            # A new connection per request: SO_REUSEPORT spreads connections, not requests.
            connector = aiohttp.TCPConnector(force_close=True)
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                await _both_workers_serving(session, url, metrics_dir)
                for i in range(sent):
                    async with session.get(f"{url}/product-details/P{i}") as resp:
                        assert resp.status == 200
                # Each worker writes its figures once a second: within that, every scrape
                # (whichever worker answers it) has them all.
                ok = {"route": ROUTE, "method": "GET", "status": "200"}
                for _ in range(40):
                    async with session.get(f"{admin}/metrics") as resp:
                        figures = parse(await resp.text())
                    if get(figures, "bff_request_duration_seconds_count", **ok) == sent:
                        break
                    await asyncio.sleep(0.05)
                for _ in range(4):
                    async with session.get(f"{admin}/metrics") as resp:
                        figures = parse(await resp.text())
                    assert get(figures, "bff_request_duration_seconds_count", **ok) == sent
                    labels = {"service": "product", "outcome": "ok"}
                    assert get(figures, "bff_downstream_attempts_total", **labels) == sent
                    assert get(figures, "bff_breaker_state", service="product") == 0
        assert proc.returncode == 0
        assert "counter_999999.db" not in _files(metrics_dir, "*")


async def _both_workers_serving(
    session: aiohttp.ClientSession, url: str, metrics_dir: Path
) -> None:
    """Poll the public port until each worker has answered: each worker's own histogram file
    (histogram_<pid>.db) holds a request series once it has served one."""
    for _ in range(int(TIMEOUT_S / 0.02)):
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with session.get(f"{url}/openapi.json") as resp:
                await resp.read()
        if _workers_served(metrics_dir) == 2:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"both workers never answered: {_files(metrics_dir, '*')}")


def _workers_served(directory: Path) -> int:
    """Workers that have counted a request (their files exist from start-up: event-loop lag)."""
    served = 0
    for path in directory.glob("histogram_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
        served += any(key.startswith('["bff_request_duration_seconds"') for key, *_ in values)
    return served


def _files(directory: Path, pattern: str) -> list[str]:
    return sorted(p.name for p in directory.glob(pattern))
