"""`/__stats`: an exact request count, the budget 504s, and the recent arrivals."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from mock_support import MockClient, get_json, put_faults

from mock_services.state import RECENT_LIMIT


class TestStats:
    """Requests are counted since start or the last DELETE; `/__*` requests never count."""

    async def test_counts_catalogue_requests_only(self, product: MockClient) -> None:
        assert (await get_json(product, "/__stats"))["requests"] == 0
        for path in ("/products/P001", "/products/missing-1", "/products/a.b", "/nope"):
            await product.get(path)
        await put_faults(product)
        await product.get("/__faults")
        await product.delete("/__faults")
        await product.get("/__stats")
        stats = await get_json(product, "/__stats")
        assert stats["requests"] == 4
        assert stats["budget_exceeded"] == 0

    async def test_delete_resets(self, product: MockClient) -> None:
        await product.get("/products/P001")
        async with product.delete("/__stats") as resp:
            assert resp.status == 200
            assert (await resp.json())["requests"] == 0
        stats = await get_json(product, "/__stats")
        assert stats == {"requests": 0, "budget_exceeded": 0, "recent": []}
        await product.get("/products/P001")
        assert (await get_json(product, "/__stats"))["requests"] == 1

    async def test_faulted_and_reset_requests_count(self, product: MockClient) -> None:
        await put_faults(product, reset_rate=1)
        with pytest.raises(aiohttp.ClientConnectionError):
            async with product.get("/products/P001"):
                pass
        await put_faults(product, error_rate=1)
        await product.get("/products/P001")
        stats = await get_json(product, "/__stats")
        # aiohttp's client may retry a GET once when a reused connection drops: count >= 2.
        assert stats["requests"] >= 2
        assert [r["status"] for r in stats["recent"]][-1] == 503
        assert "reset" in [r["status"] for r in stats["recent"]]
        assert stats["recent"][-1]["fault"] == "error"


class TestRecentArrivals:
    """The last 200 arrivals, with path, arrival time and every header received."""

    async def test_records_path_time_and_headers(self, product: MockClient) -> None:
        headers = {
            "X-Request-ID": "req-1",
            "X-Request-Timeout-Ms": "400",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "Authorization": "Bearer t",
            "Accept-Language": "fr",
            "X-User-Id": "u-9",
            "X-Custom": "yes",
        }
        before = time.time()
        async with product.get("/products/P001", headers=headers) as resp:
            assert resp.status == 200
        (entry,) = (await get_json(product, "/__stats"))["recent"]
        assert entry["path"] == "/products/P001"
        assert entry["method"] == "GET"
        assert before - 1 <= entry["arrived_at"] <= time.time() + 1
        assert entry["status"] == 200
        assert entry["fault"] is None
        for name, value in headers.items():
            assert entry["headers"][name.lower()] == value

    async def test_keeps_the_last_200_but_counts_all(self, product: MockClient) -> None:
        for n in range(RECENT_LIMIT + 5):
            await product.get(f"/products/P{n:03d}")
        stats = await get_json(product, "/__stats")
        assert stats["requests"] == RECENT_LIMIT + 5
        assert len(stats["recent"]) == RECENT_LIMIT
        assert stats["recent"][0]["path"] == "/products/P005"
        assert stats["recent"][-1]["path"] == f"/products/P{RECENT_LIMIT + 4:03d}"

    async def test_slow_fault_is_recorded(self, product: MockClient) -> None:
        await put_faults(product, slow_rate=1, slow_ms=1)
        await product.get("/products/P001")
        (entry,) = (await get_json(product, "/__stats"))["recent"]
        assert entry["fault"] == "slow"

    async def test_records_how_long_each_request_took(self, product: MockClient) -> None:
        await put_faults(product, latency_ms=60)
        started = time.perf_counter()
        await product.get("/products/P001")
        took_ms = (time.perf_counter() - started) * 1000
        (entry,) = (await get_json(product, "/__stats"))["recent"]
        assert 60 <= entry["duration_ms"] <= took_ms

    async def test_a_request_being_served_has_no_duration_yet(self, product: MockClient) -> None:
        await put_faults(product, latency_ms=300)
        task = asyncio.ensure_future(product.get("/products/P001"))
        try:
            for _ in range(100):  # until the arrival is recorded (bounded: 1 s)
                recent = (await get_json(product, "/__stats"))["recent"]
                if recent:
                    break
                await asyncio.sleep(0.01)
            assert recent[0]["status"] is None
            assert recent[0]["duration_ms"] is None
        finally:
            (await task).release()


class TestRecentQuery:
    """`?recent=N`: the last N arrivals only (the lab polls every second, and 200 entries with
    every header are ~100 KB)."""

    async def test_keeps_the_last_n(self, product: MockClient) -> None:
        for n in range(5):
            await product.get(f"/products/P{n:03d}")
        stats = await get_json(product, "/__stats?recent=2")
        assert stats["requests"] == 5
        assert [r["path"] for r in stats["recent"]] == ["/products/P003", "/products/P004"]
        assert (await get_json(product, "/__stats?recent=0"))["recent"] == []

    @pytest.mark.parametrize("value", ["-1", "x", "201", "1.5", "²"])
    async def test_invalid_is_a_400_problem(self, product: MockClient, value: str) -> None:
        async with product.get("/__stats", params={"recent": value}) as resp:
            assert resp.status == 400
            assert resp.content_type == "application/problem+json"
            assert "recent" in (await resp.json(content_type=None))["detail"]
