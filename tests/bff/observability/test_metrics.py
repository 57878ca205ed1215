"""`/metrics`: Prometheus text that counts what happened, in one worker and across two, and
the operators' figures: edge refusals, ejections, retry-budget exhaustion, bulkhead
occupancy, event-loop lag, per-worker process figures and build info, on the admin /metrics.

In-process apps share prometheus_client's global registry, so these tests compare figures
before and after what they do."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from bff_support import AdminFor, BffClient, MakeBff, Mocks, get_many
from process_support import TIMEOUT_S, running, url_in, worker_pids
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpServer

from bff.observability.metrics import BUCKETS
from mock_services import create_service_app

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


def samples(figures: Figures, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every series of `name`, by its labels."""
    return {labels: value for (n, labels), value in figures.items() if n == name}


async def scrape_until(admin: BffClient, name: str, want: float, **labels: str) -> Figures:
    """Scrape until the gauge shows `want` (sampled gauges change once a second)."""
    async with asyncio.timeout(10):
        while True:
            figures = await scrape(admin)
            if get(figures, name, **labels) == want:
                return figures
            await asyncio.sleep(0.1)


class TestEdgeRefusals:
    """Refused and rate-limited requests are counted by reason, not only seen as a status."""

    async def test_a_shed_request_is_counted(
        self, make_bff: MakeBff, mocks: Mocks, admin_for: AdminFor
    ) -> None:
        bff = await make_bff(BFF_MAX_IN_FLIGHT="1")
        admin = await admin_for(bff)
        await mocks.faults("product", latency_ms=150)
        before = await scrape(admin)
        results = await get_many(bff, 2, concurrency=2)
        assert sorted(status for status, _ in results) == [200, 503]
        after = await scrape(admin)
        assert delta(before, after, "bff_edge_rejections_total", reason="in_flight") == 1
        assert delta(before, after, "bff_edge_rejections_total", reason="rate_limited") == 0

    async def test_a_rate_limited_request_is_counted(
        self, make_bff: MakeBff, admin_for: AdminFor
    ) -> None:
        bff = await make_bff(BFF_RATE_LIMIT_RATE="3", BFF_RATE_LIMIT_BURST="3")
        admin = await admin_for(bff)
        before = await scrape(admin)
        statuses = []
        for i in range(5):
            async with bff.get(f"/product-details/P{i}") as resp:
                statuses.append(resp.status)
        assert statuses.count(429) == 2
        after = await scrape(admin)
        assert delta(before, after, "bff_edge_rejections_total", reason="rate_limited") == 2
        assert delta(before, after, "bff_edge_rejections_total", reason="in_flight") == 0


class TestResilienceCounters:
    async def test_an_ejection_is_counted_for_its_service(
        self, make_bff: MakeBff, aiohttp_server: AiohttpServer, admin_for: AdminFor
    ) -> None:
        """Two product instances, one dropping every connection: it is ejected."""
        live = await aiohttp_server(create_service_app("product", latency_scale=0))
        dead = await aiohttp_server(create_service_app("product", latency_scale=0))
        async with aiohttp.ClientSession() as session:
            faults = {"latency_ms": 0, "reset_rate": 1}
            async with session.put(dead.make_url("/__faults"), json=faults) as resp:
                assert resp.status < 300
        bff = await make_bff(
            {"product.outlier.consecutive_failures": 2, "product.breaker.min_calls": 1000},
            BFF_PRODUCT_URL=f"{live.make_url('')},{dead.make_url('')}",
        )
        admin = await admin_for(bff)
        before = await scrape(admin)
        results = await get_many(bff, 30, concurrency=2)
        assert [status for status, _ in results] == [200] * 30
        after = await scrape(admin)
        assert delta(before, after, "bff_outlier_ejections_total", service="product") >= 1
        assert delta(before, after, "bff_outlier_ejections_total", service="reviews") == 0
        assert get(after, "bff_downstream_instances", service="product") == 2

    async def test_retries_refused_by_the_budget_are_counted(
        self, make_bff: MakeBff, mocks: Mocks, admin_for: AdminFor
    ) -> None:
        """A failing reviews service: first attempts 20, budget 1 retry + 20% of them."""
        bff = await make_bff(
            {
                "reviews.retry.budget_min_retries": 1,
                "reviews.retry.budget_ratio": 0.2,
                "reviews.breaker.min_calls": 1000,
                "reviews.outlier.consecutive_failures": 1000,
            }
        )
        admin = await admin_for(bff)
        await mocks.faults("reviews", latency_ms=0, error_rate=1)
        before = await scrape(admin)
        for i in range(20):
            async with bff.get(f"/product-details/P{i}") as resp:
                assert resp.status == 200
        after = await scrape(admin)
        retries = delta(before, after, "bff_downstream_retries_total", service="reviews")
        refused = delta(before, after, "bff_retry_budget_exhausted_total", service="reviews")
        assert retries == 1 + 0.2 * 20
        # Every answer ended on a refused retry once the budget ran dry.
        assert refused >= 20 - retries
        assert delta(before, after, "bff_retry_budget_exhausted_total", service="product") == 0

    async def test_a_full_bulkhead_shows_as_occupancy_one(
        self, make_bff: MakeBff, mocks: Mocks, admin_for: AdminFor
    ) -> None:
        bff = await make_bff(
            {"reviews.max_in_flight": 2}, BFF_DEADLINE_MS=2000, BFF_REVIEWS_TIMEOUT_MS=1500
        )
        admin = await admin_for(bff)
        before = await scrape(admin)
        assert get(before, "bff_bulkhead_occupancy", service="reviews") == 0
        await mocks.faults("reviews", latency_ms=400)
        results = await get_many(bff, 3, concurrency=3)
        assert [status for status, _ in results] == [200] * 3
        # Sampled after the burst is over: the peak of the last 10 s, not the current count.
        after = await scrape_until(admin, "bff_bulkhead_occupancy", 1.0, service="reviews")
        assert get(after, "bff_bulkhead_occupancy", service="product") == pytest.approx(3 / 512)


class TestWorkerFigures:
    """What an operator sizes workers by, present from the first scrape."""

    async def test_process_build_and_loop_lag(self, bff: BffClient, admin_for: AdminFor) -> None:
        admin = await admin_for(bff)
        await asyncio.sleep(0.2)  # a few 50 ms loop-lag ticks
        figures = await scrape(admin)
        # One worker, no supervisor: worker 0.
        assert get(figures, "bff_process_resident_memory_bytes", worker="0") > 10_000_000
        assert get(figures, "bff_process_open_fds", worker="0") >= 3
        assert get(figures, "bff_process_cpu_seconds", worker="0") > 0
        started = get(figures, "bff_process_start_time_seconds", worker="0")
        assert 0 < time.time() - started < 86_400
        [build] = samples(figures, "bff_build_info").items()
        labels = dict(build[0])
        assert build[1] == 1
        assert labels["python"] == platform.python_version()
        assert labels["aiohttp"] == aiohttp.__version__
        assert labels["version"] != ""
        assert get(figures, "bff_event_loop_lag_seconds_count") >= 2
        assert get(figures, "bff_downstream_instances", service="reviews") == 1


@pytest.mark.slow
class TestProcessFiguresOfTwoWorkers:
    async def test_one_process_series_per_worker_and_a_restart_adds_none(
        self, mocks: Mocks, tmp_path: Path
    ) -> None:
        """Multiprocess mode: each worker's own figures, labelled by its index (never its pid:
        that made new series at every restart); a worker that dies is replaced under the same
        index, whose series now shows the new process (a later start time)."""
        env = {**mocks.env(), "BFF_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
        async with running(["-m", "bff", "--port", "0"], env) as (proc, lines):
            admin = url_in(await lines.next_matching("bff admin on"))
            url_in(await lines.next_matching("bff listening on"))
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                figures, first = await started_by_worker(session, admin, lambda _: True)
                rss = samples(figures, "bff_process_resident_memory_bytes")
                assert set(rss) == {
                    frozenset({("worker", "0")}),
                    frozenset({("worker", "1")}),
                }
                assert all(value > 10_000_000 for value in rss.values())
                assert len(samples(figures, "bff_build_info")) == 1
                os.kill(min(worker_pids(proc.pid)), signal.SIGKILL)
                figures, after = await started_by_worker(
                    session, admin, lambda now: now.keys() == first.keys() and now != first
                )
        assert after.keys() == {"0", "1"}, "the replacement took its predecessor's index"
        assert sum(after[w] != first[w] for w in after) == 1, "one worker was replaced"
        assert sum(after[w] > first[w] for w in after) == 1, "by a process started later"
        for name in ("bff_process_cpu_seconds", "bff_process_open_fds"):
            assert len(samples(figures, name)) == 2, name


async def started_by_worker(
    session: aiohttp.ClientSession, admin: str, done: Callable[[dict[str, float]], bool]
) -> tuple[Figures, dict[str, float]]:
    """Scrape until both workers' start times are in and satisfy `done`: ({worker: start})."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(f"{admin}/metrics") as resp:
                    figures = parse(await resp.text())
                series = samples(figures, "bff_process_start_time_seconds")
                started = {
                    dict(labels).get("worker", "?"): value for labels, value in series.items()
                }
                if len(started) == 2 and done(started):
                    return figures, started
            await asyncio.sleep(0.1)
