"""The instances of one service (bff.resilience.pool): calls go to the less busy of two
picked at random, a retry avoids the instance that just failed, and an instance that fails
in a row is ejected for a while that grows with each repeated ejection, never the last one
standing; after its ejection it gets traffic again (that is its probe)."""

from __future__ import annotations

import asyncio
import time

from bff_support import MakeBff, Mocks, clients_of, get_many
from yarl import URL

from bff.resilience.pool import InstancePool
from bff.settings import OutlierSettings


class TestInstancePool:
    SETTINGS = OutlierSettings(consecutive_failures=2, base_ejection_s=10, max_ejection_s=40)

    def urls(self, n: int) -> tuple[URL, ...]:
        return tuple(URL(f"http://127.0.0.{i + 1}:1") for i in range(n))

    def test_power_of_two_choices_prefers_fewer_in_flight(self) -> None:
        pool = InstancePool(self.urls(2), self.SETTINGS)
        busy, idle = pool.instances
        busy.in_flight = 5
        assert all(pool.pick() is idle for _ in range(20))

    def test_avoid_sends_a_retry_elsewhere(self) -> None:
        pool = InstancePool(self.urls(3), self.SETTINGS)
        first = pool.instances[0]
        assert all(pool.pick(avoid=first) is not first for _ in range(50))

    def test_ejection_grows_and_never_takes_the_last_instance(self) -> None:
        pool = InstancePool(self.urls(2), self.SETTINGS)
        a, b = pool.instances
        pool.record_failure(a)
        assert not pool.is_ejected(a)
        pool.record_failure(a)
        assert pool.is_ejected(a)
        first_until = a.ejected_until
        assert all(pool.pick() is b for _ in range(20))
        # b fails too, but it is the last healthy one: it stays.
        for _ in range(5):
            pool.record_failure(b)
        assert not pool.is_ejected(b)
        # a comes back and fails again soon: a longer ejection (10 s, then 20 s).
        a.ejected_until = time.monotonic() - 1
        pool.record_failure(a)
        pool.record_failure(a)
        assert a.ejected_until - time.monotonic() > 15
        assert first_until - time.monotonic() < 11


class TestInstances:
    """Several instances per service: balanced, and a failing one ejected, then probed."""

    async def test_one_instance_down_every_answer_is_200_and_it_is_probed_later(
        self, make_uncached_bff: MakeBff, mocks: Mocks
    ) -> None:
        live = await mocks.another("product", latency_scale=0)
        dead = await mocks.another("product", latency_scale=0)
        await dead.faults(latency_ms=0, reset_rate=1)  # accepts, then drops the connection
        bff = await make_uncached_bff(
            BFF_PRODUCT_URL=f"{live.url},{dead.url}",
            # A retry is sent only while the deadline holds the service's p90 latency:
            # a loop stalled for 300 ms (a loaded CI machine) must not use up that room.
            BFF_DEADLINE_MS=2000,
            fields={
                "product.outlier.consecutive_failures": 2,
                "product.outlier.base_ejection_s": 0.5,
                "product.breaker.min_calls": 1000,
            },
        )
        results = await get_many(bff, 40, concurrency=4)
        assert [status for status, _ in results] == [200] * 40
        dead_calls = await dead.requests()
        assert 2 <= dead_calls <= 6  # ejected after 2 failures in a row (a few in flight)
        assert await live.requests() >= 40
        pool = clients_of(bff)["product"].pool
        assert pool.is_ejected(pool.instances[1])
        # After the ejection time the dead instance gets traffic again (that is the probe).
        # The time doubles with each repeated ejection, and on a loaded machine the first
        # batch can outlast one: wait for the pool to say the ejection is over.
        for _ in range(200):  # at most 10 s
            if not pool.is_ejected(pool.instances[1]):
                break
            await asyncio.sleep(0.05)
        results = await get_many(bff, 20, concurrency=2)
        assert [status for status, _ in results] == [200] * 20
        assert await dead.requests() > dead_calls
