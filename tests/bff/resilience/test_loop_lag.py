"""The worker's own event-loop lag (bff.resilience.loop_lag): measured, decaying once the
loop catches up, and a timeout while our loop runs late is not blamed on the service."""

from __future__ import annotations

import asyncio
import time

from bff_support import MakeBff, Mocks

from bff.keys import CLIENTS
from bff.resilience.loop_lag import LoopLag


class TestLoopLag:
    """A starved event loop is measured, and its timeouts are not blamed on the service."""

    async def test_a_blocked_loop_shows_as_lag_that_then_decays(self) -> None:
        lag = LoopLag(interval_s=0.01)
        lag.start()
        try:
            await asyncio.sleep(0.03)
            assert lag.lag < 0.05
            time.sleep(0.15)  # noqa: ASYNC251 - block the loop, as a saturated worker would
            await asyncio.sleep(0.015)
            assert lag.lag >= 0.03  # ~0.14 s late, halved per tick since
            await asyncio.sleep(0.3)
            assert lag.lag < 0.02
        finally:
            await lag.stop()

    async def test_a_timeout_while_our_loop_is_late_is_neutral(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        bff = await make_bff(
            # Far above the loop lag a busy test machine shows by itself.
            {"reviews.retry.max_attempts": 1, "loop_lag_neutral_s": 0.5},
            BFF_REVIEWS_TIMEOUT_MS=100,
            BFF_RATE_LIMIT_RATE=0,
        )
        await mocks.faults("reviews", latency_ms=1000)
        reviews = bff.server.app[CLIENTS]["reviews"]
        assert reviews.loop_lag is not None
        reviews.loop_lag.lag = 1000.0  # as if measured on a starved worker; decays slowly
        async with bff.get("/product-details/P001") as resp:
            assert (await resp.json())["degraded"] == {"reviews": "timeout"}
        assert reviews.breaker.counts[1] == 0
        reviews.loop_lag.lag = 0.0  # the same timeout on a healthy loop counts
        async with bff.get("/product-details/P001") as resp:
            assert (await resp.json())["degraded"] == {"reviews": "timeout"}
        assert reviews.breaker.counts[1] == 1
