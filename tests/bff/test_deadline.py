"""One deadline per request: the three calls start together, nothing waits past the deadline,
a client's shorter budget wins, and a product failure cancels the other calls."""

from __future__ import annotations

import pytest
from bff_support import KINDS, BffClient, MakeBff, Mocks, server_timing, timed_get


class TestConcurrency:
    """The three downstream calls start at once, not one after the other."""

    async def test_the_three_calls_arrive_together(self, bff: BffClient, mocks: Mocks) -> None:
        # 200 ms per service: sent one after another, arrivals would be >= 200 ms apart.
        for kind in KINDS:
            await mocks.faults(kind, latency_ms=200)
        async with bff.get("/product-details/P001", headers={"X-Request-ID": "together"}) as r:
            assert r.status == 200
        arrivals = []
        for kind in KINDS:
            stats = await mocks.stats(kind)
            (entry,) = [e for e in stats["recent"] if e["headers"]["x-request-id"] == "together"]
            arrivals.append(entry["arrived_at"])
        assert max(arrivals) - min(arrivals) < 0.1


class TestDeadline:
    """The answer goes out by the deadline whatever the downstreams do."""

    async def test_everything_hangs_product_times_out_by_the_deadline(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_bff(BFF_DEADLINE_MS=300)
        for kind in KINDS:
            await mocks.faults(kind, latency_ms=10_000)
        resp, body, elapsed = await timed_get(bff, "/product-details/P001")
        assert resp.status == 504
        assert body["detail"] == "product: timeout"
        assert elapsed < 0.3 + 0.5  # deadline plus a generous margin, far below 10 s

    async def test_optional_parts_hanging_are_cut_at_the_deadline(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_bff(BFF_DEADLINE_MS=300)
        await mocks.faults("reviews", latency_ms=10_000)
        await mocks.faults("inventory", latency_ms=10_000)
        resp, body, elapsed = await timed_get(bff, "/product-details/P001")
        assert resp.status == 200
        assert body["degraded"] == {"reviews": "timeout", "inventory": "timeout"}
        assert elapsed < 0.3 + 0.5
        # The mocks were told the budget and gave up on their own: no work nobody waits for.
        assert (await mocks.stats("reviews"))["budget_exceeded"] >= 1

    async def test_a_shorter_client_budget_wins(self, make_bff: MakeBff, mocks: Mocks) -> None:
        bff = await make_bff(BFF_DEADLINE_MS=5000)
        await mocks.faults("reviews", latency_ms=2000)
        resp, body, elapsed = await timed_get(
            bff, "/product-details/P001", headers={"X-Request-Timeout-Ms": "250"}
        )
        assert resp.status == 200
        assert body["degraded"] == {"reviews": "timeout"}
        assert elapsed < 0.25 + 0.5  # not the 2 s of the service, not the 5 s deadline

    async def test_a_longer_client_budget_does_not_extend_the_deadline(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_bff(BFF_DEADLINE_MS=300)
        await mocks.faults("reviews", latency_ms=1500)
        _resp, body, elapsed = await timed_get(
            bff, "/product-details/P001", headers={"X-Request-Timeout-Ms": "60000"}
        )
        assert body["degraded"] == {"reviews": "timeout"}
        assert elapsed < 0.3 + 0.5

    async def test_the_budget_left_is_propagated_to_every_call(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_bff(BFF_DEADLINE_MS=400)
        async with bff.get("/product-details/P001", headers={"X-Request-ID": "budget"}) as r:
            assert r.status == 200
        for kind in KINDS:
            stats = await mocks.stats(kind)
            (entry,) = [e for e in stats["recent"] if e["headers"]["x-request-id"] == "budget"]
            budget = int(entry["headers"]["x-request-timeout-ms"])
            # min(per-attempt timeout 300 ms, what is left of 400 ms) minus a 5 ms margin
            assert 250 <= budget <= 295

    @pytest.mark.parametrize("value", ["0", "-5", "abc", "1.5", "", "9" * 12, "10 0"])
    async def test_an_invalid_client_budget_is_a_400(
        self, bff: BffClient, mocks: Mocks, value: str
    ) -> None:
        async with bff.get(
            "/product-details/P001", headers={"X-Request-Timeout-Ms": value}
        ) as resp:
            assert resp.status == 400
            body = await resp.json(content_type=None)
        assert body["invalidParams"][0]["name"] == "X-Request-Timeout-Ms"
        for kind in KINDS:
            assert await mocks.requests(kind) == 0


class TestCancellation:
    """When the product fails, the answer goes out at once and the other calls are cancelled."""

    async def test_product_failure_cancels_slow_optional_calls(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_bff(BFF_DEADLINE_MS=5000)
        await mocks.faults("product", error_rate=1, error_status=500)  # 500: not retried
        await mocks.faults("reviews", latency_ms=3000)
        await mocks.faults("inventory", latency_ms=3000)
        resp, _body, elapsed = await timed_get(bff, "/product-details/P001")
        assert resp.status == 502
        timing = server_timing(resp.headers["Server-Timing"])
        assert timing["reviews"]["desc"] == "cancelled"
        assert timing["inventory"]["desc"] == "cancelled"
        assert elapsed < 1.5  # the optional calls would have taken 3 s
        # The mocks saw the BFF hang up: their handlers were cancelled mid-work.
        for kind in ("reviews", "inventory"):
            for _ in range(50):
                recent = (await mocks.stats(kind))["recent"]
                if recent and recent[-1]["status"] is not None:
                    break
                await _sleep(0.02)
            assert recent[-1]["status"] == "cancelled"

    async def test_product_404_answers_without_waiting_for_slow_reviews(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_bff(BFF_DEADLINE_MS=5000)
        await mocks.faults("reviews", latency_ms=3000)
        resp, _, elapsed = await timed_get(bff, "/product-details/missing-1")
        assert resp.status == 404
        assert elapsed < 1.5


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
