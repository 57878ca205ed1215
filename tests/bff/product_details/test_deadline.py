"""One deadline per request: the three calls start together, nothing waits past the deadline,
a client's shorter budget wins, and a product failure cancels the other calls."""

from __future__ import annotations

import aiohttp
import pytest
from bff_support import KINDS, BffClient, MakeBff, Mocks, server_timing, timed_get
from multidict import CIMultiDict

# How far past the deadline an answer may go out: the fan-out's 5 ms safety net plus encoding,
# as the BFF measures it (Server-Timing `total`), and the loopback round trip on a loaded
# 2-core machine (wall clock). Tight on purpose: a deadline 2.5x too long must fail here.
TOTAL_SLACK_MS = 20.0


WALL_SLACK_S = 0.1


def assert_answered_by(resp: aiohttp.ClientResponse, elapsed: float, deadline_s: float) -> None:
    total_ms = float(server_timing(resp.headers["Server-Timing"])["total"]["dur"])
    assert total_ms <= deadline_s * 1000 + TOTAL_SLACK_MS, resp.headers["Server-Timing"]
    assert elapsed <= deadline_s + WALL_SLACK_S


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
        assert_answered_by(resp, elapsed, 0.3)  # far below the 10 s of the services

    async def test_optional_parts_hanging_are_cut_at_the_deadline(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        # A wide propagation margin: the mocks are told a budget 150 ms short of ours, so
        # they give up on their own before we hang up on them even on a busy machine (a
        # mock's handler cancelled by our hang-up never counts its budget as exceeded).
        bff = await make_bff({"propagation_margin_s": 0.150}, BFF_DEADLINE_MS=300)
        await mocks.faults("reviews", latency_ms=10_000)
        await mocks.faults("inventory", latency_ms=10_000)
        resp, body, elapsed = await timed_get(bff, "/product-details/P001")
        assert resp.status == 200
        assert body["degraded"] == {"reviews": "timeout", "inventory": "timeout"}
        assert_answered_by(resp, elapsed, 0.3)
        # The mocks were told the budget and gave up on their own: no work nobody waits for.
        # (They notice it on their own clock, just after we answered: poll, bounded.)
        for _ in range(50):
            if (await mocks.stats("reviews"))["budget_exceeded"] >= 1:
                break
            await _sleep(0.02)
        assert (await mocks.stats("reviews"))["budget_exceeded"] >= 1

    async def test_a_shorter_client_budget_wins(self, make_bff: MakeBff, mocks: Mocks) -> None:
        bff = await make_bff(BFF_DEADLINE_MS=5000)
        await mocks.faults("reviews", latency_ms=2000)
        resp, body, elapsed = await timed_get(
            bff, "/product-details/P001", headers={"X-Request-Timeout-Ms": "250"}
        )
        assert resp.status == 200
        assert body["degraded"] == {"reviews": "timeout"}
        assert_answered_by(resp, elapsed, 0.25)  # not the 2 s of the service, not the 5 s deadline

    async def test_a_longer_client_budget_does_not_extend_the_deadline(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_bff(BFF_DEADLINE_MS=300)
        await mocks.faults("reviews", latency_ms=1500)
        resp, body, elapsed = await timed_get(
            bff, "/product-details/P001", headers={"X-Request-Timeout-Ms": "60000"}
        )
        assert body["degraded"] == {"reviews": "timeout"}
        assert_answered_by(resp, elapsed, 0.3)

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

    async def test_two_client_budgets_are_a_400(self, bff: BffClient, mocks: Mocks) -> None:
        """Which one the client meant is anybody's guess: refused, even when both are valid."""
        headers = CIMultiDict([("X-Request-Timeout-Ms", "300"), ("X-Request-Timeout-Ms", "300")])
        async with bff.get("/product-details/P001", headers=headers) as resp:
            assert resp.status == 400
            body = await resp.json(content_type=None)
        assert body["invalidParams"] == [
            {"name": "X-Request-Timeout-Ms", "reason": "X-Request-Timeout-Ms must be given once"}
        ]
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
        # Product answers its 500 after ~50 ms; waiting for even one 300 ms attempt of the
        # optional calls would take longer than this.
        assert elapsed < 0.25
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
        # The product's 404 comes after ~50 ms; reviews' first attempt alone would end at
        # 300 ms (its per-attempt timeout), three of them at 0.9 s.
        assert elapsed < 0.25
        assert server_timing(resp.headers["Server-Timing"])["reviews"]["desc"] == "cancelled"


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


class TestAnswerWhenAllPartsArrived:
    async def test_the_answer_does_not_wait_for_the_deadline(self, make_bff: MakeBff) -> None:
        """With every part answered (50/80/30 ms), the answer goes out then, not at the 3 s
        deadline: the fan-out counts its finished parts (a wide margin: 1.5 s)."""
        bff = await make_bff(BFF_DEADLINE_MS=3000)
        resp, body, elapsed = await timed_get(bff, "/product-details/P001")
        assert resp.status == 200
        assert body["degraded"] == {}
        assert elapsed < 1.5
