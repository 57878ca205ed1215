"""Retry budget (Envoy's idea): retries may add at most `ratio` of first attempts, plus a floor.

Counted over a sliding window of one-second buckets, so a dead service sees about
`1 + ratio` times the calls instead of `max_attempts` times, while a healthy service with the
odd transient error gets every retry it needs.
"""

from __future__ import annotations

import math
import time


class RetryBudget:
    __slots__ = ("_buckets", "_firsts", "_min", "_ratio", "_retries", "_slot", "_window")

    def __init__(self, ratio: float, min_retries: int, window_s: float) -> None:
        self._ratio = ratio
        self._min = min_retries
        self._window = max(1, math.ceil(window_s))
        # Each bucket: [second, first attempts, retries].
        self._buckets: list[list[int]] = [[-1, 0, 0] for _ in range(self._window)]
        self._firsts = 0
        self._retries = 0
        self._slot: list[int] = self._buckets[0]

    def _current(self) -> list[int]:
        now = int(time.monotonic())
        slot = self._slot
        if slot[0] == now:
            return slot
        slot = self._buckets[now % self._window]
        if slot[0] != now:
            self._firsts -= slot[1]
            self._retries -= slot[2]
            slot[0], slot[1], slot[2] = now, 0, 0
        # Buckets older than the window but not yet overwritten still hold counts: sweep them.
        for bucket in self._buckets:
            if bucket[0] != -1 and now - bucket[0] >= self._window:
                self._firsts -= bucket[1]
                self._retries -= bucket[2]
                bucket[0], bucket[1], bucket[2] = -1, 0, 0
        self._slot = slot
        return slot

    def record_first_attempt(self) -> None:
        self._current()[1] += 1
        self._firsts += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; False when the window's allowance is used up."""
        slot = self._current()
        if self._retries >= self._firsts * self._ratio + self._min:
            return False
        slot[2] += 1
        self._retries += 1
        return True

    @property
    def counts(self) -> tuple[int, int]:
        """(first attempts, retries) inside the current window."""
        self._current()
        return self._firsts, self._retries
