"""The live status page: `/status` and `/status.json` on the admin listener, never the public
port. The JSON's shape is what the page reads (bff/admin/static/status.js); the browser test
of the page itself is tests/browser/test_status_page.py."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from bff_support import AdminFor, BffClient, MakeBff, Mocks

from bff.keys import ADMISSION

SERVICES = ("product", "reviews", "inventory")
SERVICE_FIELDS = {
    "breaker",
    "calls",
    "success_rate",
    "latency_ms",
    "retries",
    "hedges",
    "in_flight",
    "cache",
}


async def status(admin: BffClient) -> dict[str, Any]:
    async with admin.get("/status.json") as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        body: dict[str, Any] = await resp.json()
        return body


async def worker(admin: BffClient) -> dict[str, Any]:
    (only,) = (await status(admin))["workers"]
    result: dict[str, Any] = only
    return result


class TestWhereItIsServed:
    @pytest.mark.parametrize("path", ["/status", "/status.json", "/static/status.js"])
    async def test_never_on_the_public_port(self, make_bff: MakeBff, path: str) -> None:
        bff = await make_bff()
        async with bff.get(path) as resp:
            assert resp.status == 404
            assert resp.content_type == "application/problem+json"

    async def test_the_page_and_its_assets_on_the_admin_port(
        self, make_bff: MakeBff, admin_for: AdminFor
    ) -> None:
        admin = await admin_for(await make_bff())
        async with admin.get("/status") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
            html = await resp.text()
        assert '<html lang="en">' in html
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
        assert len(assets) == 2
        for asset in assets:
            async with admin.get(asset) as resp:
                assert resp.status == 200, asset


class TestSnapshot:
    """One block for this worker; every service the BFF calls, with every figure."""

    async def test_shape(self, make_bff: MakeBff, admin_for: AdminFor) -> None:
        bff = await make_bff()
        admin = await admin_for(bff)
        body = await status(admin)
        assert isinstance(body["generated_at"], float)
        (w,) = body["workers"]
        assert isinstance(w["pid"], int)
        assert w["uptime_s"] >= 0
        admission = w["admission"]
        assert admission["state"] == "serving"
        assert admission["in_flight"] == 0
        assert admission["queue_delay_ms"] >= 0
        assert admission["loop_lag_ms"] >= 0
        assert admission["limit"] == 64
        assert admission["waiting"] == 0
        assert admission["target_ms"] == 50.0
        assert tuple(w["services"]) == SERVICES
        for figures in w["services"].values():
            assert set(figures) == SERVICE_FIELDS
            assert figures["breaker"] == "closed"
            assert figures["in_flight"] == 0
            assert set(figures["cache"]) == {"hits", "misses", "stale"}

    async def test_a_request_shows_in_the_figures(
        self, make_bff: MakeBff, admin_for: AdminFor
    ) -> None:
        """Counters are this process's, shared by every app a test builds: compare."""
        bff = await make_bff()
        admin = await admin_for(bff)
        before = (await worker(admin))["services"]
        for product_id in ("S-1", "S-2", "S-1"):
            async with bff.get(f"/product-details/{product_id}") as resp:
                assert resp.status == 200
        after = (await worker(admin))["services"]
        for name in SERVICES:
            b, a = before[name], after[name]
            assert a["calls"] - b["calls"] == 2, name
            assert a["cache"]["misses"] - b["cache"]["misses"] == 2, name
            assert a["cache"]["hits"] - b["cache"]["hits"] == 1, name
            assert a["success_rate"] == 1.0
            latency = a["latency_ms"]
            assert latency is not None
            assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] < 500

    async def test_breaker_open_and_no_success_rate(
        self, make_bff: MakeBff, admin_for: AdminFor, mocks: Mocks
    ) -> None:
        bff = await make_bff({"reviews.breaker.min_calls": 3})
        admin = await admin_for(bff)
        await mocks.faults("reviews", error_rate=1.0, latency_ms=1)
        for n in range(20):  # bounded: opens after 3 failed calls
            async with bff.get(f"/product-details/B-{n}") as resp:
                assert resp.status == 200
            reviews = (await worker(admin))["services"]["reviews"]
            if reviews["breaker"] == "open":
                break
        assert reviews["breaker"] == "open"
        assert reviews["success_rate"] is None, "the window starts empty when it opens"
        assert (await worker(admin))["services"]["product"]["breaker"] == "closed"

    async def test_shedding_while_the_loop_runs_late(
        self, make_bff: MakeBff, admin_for: AdminFor
    ) -> None:
        """Admission's own state, as it decides: a whole interval of delays over the target
        (here fed to it directly) makes the worker congested, and the page says so."""
        bff = await make_bff()
        admin = await admin_for(bff)
        assert bff.app is not None
        admission = bff.app[ADMISSION]
        # An hour ahead of the clock the worker's own requests read: a request of theirs that
        # lands between two reads of the page (a busy machine) cannot close an interval.
        now = time.perf_counter() + 3600.0
        for _ in range(12):
            admission.observe(0.2, now)
            now += 0.01
        shown = (await worker(admin))["admission"]
        assert (shown["state"], shown["limit"], shown["reserve_ms"]) == ("shedding", 32, 100.0)
        assert shown["client_gone"] == 0
        for _ in range(12):
            admission.observe(0.001, now)
            now += 0.01
        assert (await worker(admin))["admission"]["state"] == "serving"
