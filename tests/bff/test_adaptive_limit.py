"""The adaptive concurrency limit: it grows while latency is steady, shrinks when requests queue."""

from __future__ import annotations

from bff.resilience.adaptive import AdaptiveLimit, AdaptiveLimitPolicy


def _per_request(initial: int, minimum: int, maximum: int) -> AdaptiveLimitPolicy:
    """One sample per window, for tests of the gradient itself."""
    return AdaptiveLimitPolicy(
        initial=initial, minimum=minimum, maximum=maximum, window=1, long_window=600
    )


def _drive(limit: AdaptiveLimit, rtt_s: float, rounds: int) -> None:
    """Run `rounds` rounds of a fully used limit, every request taking `rtt_s`."""
    for _ in range(rounds):
        taken = 0
        while limit.acquire():
            taken += 1
        for _ in range(taken):
            limit.release(rtt_s)


class TestAdmission:
    def test_refuses_past_the_limit_and_admits_again_after_a_release(self) -> None:
        limit = AdaptiveLimit(AdaptiveLimitPolicy(initial=3, minimum=1))
        assert [limit.acquire() for _ in range(4)] == [True, True, True, False]
        limit.release(None)
        assert limit.acquire() is True
        assert limit.in_flight == 3

    def test_a_release_without_latency_teaches_nothing(self) -> None:
        limit = AdaptiveLimit(AdaptiveLimitPolicy(initial=4, minimum=1))
        for _ in range(4):
            limit.acquire()
        for _ in range(4):
            limit.release(None)
        assert limit.limit == 4
        assert limit.long_rtt == 0


class TestGradient:
    def test_steady_latency_lets_the_limit_grow(self) -> None:
        limit = AdaptiveLimit(
            AdaptiveLimitPolicy(initial=20, minimum=10, maximum=200, window=1, long_window=600)
        )
        _drive(limit, 0.080, 20)
        assert limit.limit > 40

    def test_queueing_latency_shrinks_the_limit_to_its_minimum(self) -> None:
        limit = AdaptiveLimit(
            AdaptiveLimitPolicy(initial=100, minimum=10, maximum=200, window=1, long_window=600)
        )
        _drive(limit, 0.080, 5)
        grown = limit.limit
        # Latency triples: requests are queueing inside the worker.
        _drive(limit, 0.240, 1)
        assert limit.limit < grown / 2
        # And keeps climbing while the queue grows.
        for factor in range(2, 12):
            _drive(limit, 0.240 * factor, 1)
        assert limit.limit == 10

    def test_a_new_steady_latency_becomes_the_norm_again(self) -> None:
        """A downstream that got slower for good is not overload: the limit comes back."""
        limit = AdaptiveLimit(
            AdaptiveLimitPolicy(initial=100, minimum=10, maximum=200, window=1, long_window=600)
        )
        _drive(limit, 0.080, 5)
        _drive(limit, 0.240, 1)
        shrunk = limit.limit
        _drive(limit, 0.240, 10)
        assert limit.limit > 2 * shrunk

    def test_latency_within_the_tolerance_is_not_queueing(self) -> None:
        limit = AdaptiveLimit(_per_request(50, 10, 50))
        _drive(limit, 0.080, 5)
        _drive(limit, 0.080 * 1.4, 10)
        assert limit.limit == 50

    def test_an_unused_limit_does_not_grow(self) -> None:
        limit = AdaptiveLimit(
            AdaptiveLimitPolicy(initial=40, minimum=10, maximum=400, window=1, long_window=600)
        )
        for _ in range(200):
            assert limit.acquire()
            limit.release(0.080)  # one request at a time: far below limit / 2
        assert limit.limit == 40

    def test_recovers_quickly_once_the_overload_ends(self) -> None:
        limit = AdaptiveLimit(
            AdaptiveLimitPolicy(initial=60, minimum=10, maximum=200, window=1, long_window=600)
        )
        _drive(limit, 0.080, 3)
        _drive(limit, 1.0, 200)  # a long overload drags the long average up
        dragged = limit.long_rtt
        _drive(limit, 0.080, 40)
        assert limit.long_rtt < dragged / 4
        assert limit.limit > 60


def _full(limit: AdaptiveLimit, rtts: list[float]) -> None:
    """Keep the limit fully used: each request that ends is replaced by a new one."""
    while limit.acquire():
        pass
    for rtt in rtts:
        limit.release(rtt)
        limit.acquire()


class TestWindows:
    def test_one_slow_request_in_a_window_is_not_queueing(self) -> None:
        """The limit moves on a window's mean: one request held to the deadline by a slow
        downstream among 19 ordinary ones does not shrink it."""
        limit = AdaptiveLimit(AdaptiveLimitPolicy(initial=40, minimum=10, maximum=40, window=20))
        _full(limit, [0.080] * 20 * 12)
        _full(limit, ([0.080] * 19 + [0.500]) * 5)
        assert limit.limit == 40

    def test_a_window_of_queueing_shrinks_it(self) -> None:
        limit = AdaptiveLimit(AdaptiveLimitPolicy(initial=40, minimum=10, maximum=40, window=20))
        _full(limit, [0.080] * 20 * 12)
        _full(limit, [0.300] * 20 * 5)
        assert limit.limit < 30
