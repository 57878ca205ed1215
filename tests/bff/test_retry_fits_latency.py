"""A retry is sent only if it can still finish: the deadline left, after the backoff, must hold
the service's recently observed p90 latency plus the propagation margin.

A retry that cannot finish in time only adds load to a service that is already failing, and
its answer would arrive after we have answered. The mocks' own request counts show whether the
second attempt was sent.
"""

from __future__ import annotations

from bff_support import MakeBff, Mocks

WARM_UP = 12  # > 8 successes: the client now knows the service's p90 (~200 ms here)


async def failing_call_attempts(make_bff: MakeBff, mocks: Mocks, deadline_ms: int) -> int:
    """Teach the BFF that reviews take ~200 ms, then make reviews fail with a 503 after 150 ms,
    and return how many attempts one request sent to reviews."""
    # No hedging: its delay is capped at 150 ms, the instant the failures below arrive, and a
    # hedge racing them would be one more request to count.
    bff = await make_bff(
        {"reviews.hedge.enabled": False},
        BFF_DEADLINE_MS=deadline_ms,
        BFF_REVIEWS_TIMEOUT_MS=400,
    )
    await mocks.faults("reviews", latency_ms=200)
    for i in range(WARM_UP):
        async with bff.get(f"/product-details/P{i:03}") as resp:
            assert resp.status == 200
            assert (await resp.json())["degraded"] == {}
    await mocks.faults("reviews", latency_ms=150, error_rate=1, error_status=503)
    before = await mocks.requests("reviews")
    async with bff.get("/product-details/P100") as resp:
        assert resp.status == 200
        assert (await resp.json())["degraded"] == {"reviews": "unavailable"}
    return await mocks.requests("reviews") - before


class TestRetryMustFit:
    async def test_no_retry_when_the_time_left_is_below_the_services_p90(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        """Deadline 320 ms: after the 150 ms failure ~170 ms are left, less than the 200 ms the
        service needs: the retry is not sent (it is when the check is only "time left > 0")."""
        assert await failing_call_attempts(make_bff, mocks, deadline_ms=320) == 1

    async def test_a_retry_is_sent_when_it_fits(self, make_bff: MakeBff, mocks: Mocks) -> None:
        """Deadline 1.5 s: room for the three attempts of 150 ms each, all sent."""
        assert await failing_call_attempts(make_bff, mocks, deadline_ms=1500) == 3
