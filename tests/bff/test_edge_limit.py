"""The edge's concurrency limit: its bounds come from BFF_MAX_IN_FLIGHT, and every request
the API answered teaches it that request's latency; the limit is published as it moves."""

from __future__ import annotations

import asyncio

from bff_support import BffClient, MakeBff, counted

from bff.edge.guard import QUEUE_TARGET_S, EdgeGuard, _limit_policy
from bff.keys import EDGE
from bff.settings import EdgeSettings


def bounds(max_in_flight: int, adaptive: bool) -> tuple[int, int, int, float | None]:
    policy = _limit_policy(EdgeSettings(max_in_flight=max_in_flight, adaptive_concurrency=adaptive))
    return policy.initial, policy.minimum, policy.maximum, policy.queue_target_s


class TestBounds:
    """(initial, minimum, maximum, queueing target) of the limit."""

    def test_adaptive_off_is_a_fixed_limit_at_the_ceiling(self) -> None:
        assert bounds(100, adaptive=False) == (100, 100, 100, None)

    def test_adaptive_starts_at_64_and_moves_between_16_and_the_ceiling(self) -> None:
        assert bounds(1024, adaptive=True) == (64, 16, 1024, QUEUE_TARGET_S)

    def test_a_ceiling_below_the_start_bounds_everything(self) -> None:
        assert bounds(8, adaptive=True) == (8, 8, 8, QUEUE_TARGET_S)


def guard_of(bff: BffClient) -> EdgeGuard:
    assert bff.app is not None
    guard: EdgeGuard = bff.app[EDGE]
    return guard


async def answered(bff: BffClient, first: int, count: int, at_once: int) -> None:
    """`count` requests for distinct ids (no cached answers), `at_once` at a time."""

    async def one(n: int) -> None:
        async with bff.get(f"/product-details/P{n:05d}") as resp:
            assert resp.status == 200

    for start in range(first, first + count, at_once):
        await asyncio.gather(*(one(n) for n in range(start, min(start + at_once, first + count))))


class TestLearning:
    async def test_each_answered_request_teaches_the_limit_its_latency(
        self, make_bff: MakeBff
    ) -> None:
        bff = await make_bff()
        limit = guard_of(bff).concurrency
        assert limit.long_rtt == 0
        await answered(bff, 0, 20, at_once=4)  # one window of the limit
        # The mocks' reference latencies: the slowest part (reviews) takes 80 ms.
        assert 0.080 <= limit.long_rtt < 2.0

    async def test_a_limit_that_grows_is_published(self, make_bff: MakeBff) -> None:
        """Steady latency with over half the limit in use: it grows past its start of 64,
        and `bff_concurrency_limit` follows."""
        bff = await make_bff()
        limit = guard_of(bff).concurrency
        await answered(bff, 0, 480, at_once=40)
        assert limit.limit > 64
        assert counted("bff_concurrency_limit") == int(limit.limit)
