"""The adaptive concurrency limit: it grows while latency is steady, shrinks when requests queue."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

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


def _one_window(limit: AdaptiveLimit, rtt_s: float, in_flight: int, queued_s: float = 0.0) -> None:
    """One request ends with `in_flight` requests in flight (itself included)."""
    while limit.in_flight < in_flight:
        assert limit.acquire()
    limit.release(rtt_s, queued_s)


_EXACT = AdaptiveLimitPolicy(initial=100, minimum=1, maximum=10_000, window=1, long_window=600)


def _exact(**changes: Any) -> AdaptiveLimitPolicy:
    """One request per window, a start of 100, bounds out of the way; `changes` on top."""
    return dataclasses.replace(_EXACT, **changes)


class TestTheDocumentedStep:
    """One window's step, figure by figure, as the module's docstring writes it:
    target = limit * gradient + max(queue_size 4, sqrt(limit)), then 20 % of the way to it."""

    def test_steady_latency_with_the_limit_in_use_grows_by_the_headroom(self) -> None:
        limit = AdaptiveLimit(_exact())
        _one_window(limit, 0.100, in_flight=50)  # exactly half the limit in use: not app-limited
        # gradient 1: target = 100 + sqrt(100) = 110; limit = 0.8 * 100 + 0.2 * 110
        assert limit.limit == pytest.approx(102.0)

    def test_under_half_of_the_limit_in_use_teaches_no_growth(self) -> None:
        limit = AdaptiveLimit(_exact())
        _one_window(limit, 0.100, in_flight=40)
        assert limit.limit == 100

    def test_latency_below_the_norm_grows_no_faster_than_steady_latency(self) -> None:
        limit = AdaptiveLimit(_exact())
        _one_window(limit, 0.300, in_flight=100)  # the norm: 0.3 s
        before = limit.limit
        _one_window(limit, 0.100, in_flight=100)  # 3x faster: the gradient is capped at 1
        assert limit.limit == pytest.approx(0.8 * before + 0.2 * (before + math.sqrt(before)))

    def test_queueing_past_the_target_shrinks_in_proportion(self) -> None:
        limit = AdaptiveLimit(_exact(queue_target_s=0.010))
        _one_window(limit, 0.100, in_flight=100, queued_s=0.0125)
        # gradient = 0.010 / 0.0125 = 0.8: target = 80 + 10 = 90; limit = 80 + 18
        assert limit.limit == pytest.approx(98.0)

    def test_a_release_without_a_queue_time_means_no_queueing(self) -> None:
        limit = AdaptiveLimit(_exact(queue_target_s=0.010))
        while limit.acquire():
            pass
        limit.release(0.100)  # no queue time given
        assert limit.limit == pytest.approx(102.0)

    def test_the_window_averages_its_queue_times(self) -> None:
        limit = AdaptiveLimit(_exact(queue_target_s=0.010, window=2))
        _one_window(limit, 0.100, in_flight=100, queued_s=0.015)
        _one_window(limit, 0.100, in_flight=100, queued_s=0.010)
        # mean 0.0125: gradient 0.8, as above
        assert limit.limit == pytest.approx(98.0)


class TestTheLongAverage:
    def test_a_plain_mean_through_the_warm_up_then_an_exponential_average(self) -> None:
        # long_window 9: each window after the warm-up moves the average 2 / (9 + 1) = 20 %.
        limit = AdaptiveLimit(_exact(warmup=1, long_window=9))
        _one_window(limit, 0.100, in_flight=100)
        assert limit.long_rtt == pytest.approx(0.100)
        _one_window(limit, 0.200, in_flight=100)
        assert limit.long_rtt == pytest.approx(0.120)

    def test_pulled_down_only_while_over_twice_the_window(self) -> None:
        limit = AdaptiveLimit(_exact())
        _one_window(limit, 0.300, in_flight=100)
        _one_window(limit, 0.100, in_flight=100)
        assert limit.long_rtt == pytest.approx(0.200)  # the mean; exactly twice: not pulled

    def test_over_twice_the_window_it_loses_5_percent(self) -> None:
        limit = AdaptiveLimit(_exact())
        _one_window(limit, 0.300, in_flight=100)
        _one_window(limit, 0.070, in_flight=100)  # mean 0.185 > 2 x 0.07 (but < 3 x 0.07)
        assert limit.long_rtt == pytest.approx(0.185 * 0.95)
