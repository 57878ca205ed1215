"""The bulkhead of each service: a cap on its calls in flight in this worker. When full,
the call is refused at once as `overloaded`, with no queueing and no network call; the
product's refusal is a 503."""

from __future__ import annotations

from collections import Counter

from bff_support import MakeBff, Mocks, degraded, get_many


class TestBulkhead:
    """A cap on calls in flight per service; when full, no queueing and no network call."""

    async def test_third_concurrent_call_is_overloaded_without_a_call(
        self, make_uncached_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_uncached_bff(
            {"reviews.max_in_flight": 2}, BFF_DEADLINE_MS=2000, BFF_REVIEWS_TIMEOUT_MS=1500
        )
        await mocks.faults("reviews", latency_ms=400)
        results = await get_many(bff, 3, concurrency=3)
        assert degraded(results) == Counter({"overloaded": 1})
        assert await mocks.requests("reviews") == 2

    async def test_product_bulkhead_full_is_503(
        self, make_uncached_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_uncached_bff(
            {"product.max_in_flight": 1}, BFF_DEADLINE_MS=2000, BFF_PRODUCT_TIMEOUT_MS=1500
        )
        await mocks.faults("product", latency_ms=400)
        results = await get_many(bff, 2, concurrency=2)
        assert sorted(status for status, _ in results) == [200, 503]
        assert await mocks.requests("product") == 1
