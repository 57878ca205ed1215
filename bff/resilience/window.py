"""Counts over a sliding time window of one-second buckets (the retry budget and the breaker).

`add(i)` counts one event of kind `i` in the current second; `totals` holds each kind's count
over the last `window_s` seconds. Old buckets are swept lazily when the second changes, so
the common call (same second as the last one) costs one comparison and two additions.
"""

from __future__ import annotations

import math
import time


class SlidingCounts:
    __slots__ = ("_buckets", "_slot", "_window", "totals")

    def __init__(self, kinds: int, window_s: float) -> None:
        self._window = max(1, math.ceil(window_s))
        # Each bucket: [second, count of kind 0, count of kind 1, ...].
        self._buckets: list[list[int]] = [[-1] + [0] * kinds for _ in range(self._window)]
        self._slot: list[int] = self._buckets[0]
        self.totals: list[int] = [0] * kinds

    def add(self, kind: int) -> None:
        slot = self._slot
        if slot[0] != int(time.monotonic()):
            slot = self.current()
        slot[kind + 1] += 1
        self.totals[kind] += 1

    def current(self) -> list[int]:
        """This second's bucket, after dropping every bucket that left the window."""
        now = int(time.monotonic())
        slot = self._slot
        if slot[0] == now:
            return slot
        slot = self._buckets[now % self._window]
        if slot[0] != now:
            self._empty(slot)
            slot[0] = now
        # Buckets older than the window but not yet overwritten still hold counts: sweep them.
        for bucket in self._buckets:
            if bucket[0] != -1 and now - bucket[0] >= self._window:
                self._empty(bucket)
                bucket[0] = -1
        self._slot = slot
        return slot

    def clear(self) -> None:
        for bucket in self._buckets:
            self._empty(bucket)
            bucket[0] = -1

    def _empty(self, bucket: list[int]) -> None:
        totals = self.totals
        for kind in range(len(totals)):
            totals[kind] -= bucket[kind + 1]
            bucket[kind + 1] = 0
