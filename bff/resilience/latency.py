"""Recently observed latency of a service, for deciding whether a retry can still finish.

Keeps the last N successful attempt durations; `floor()` is their 90th percentile, so the
"is there time for one more attempt?" question is answered from what the service really does,
not from a constant. Recording is O(1) on the hot path; `floor()` sorts only when a retry is
being considered, and `p95()` (the hedging delay, asked on every call) re-sorts at most once
every `_REFRESH` new samples.
"""

from __future__ import annotations

from collections import deque

_MIN_SAMPLES = 8
_REFRESH = 8  # a sort of 64 floats is ~3 us; the p95 moves slowly anyway


class LatencyWindow:
    __slots__ = ("_default", "_p95", "_samples", "_stale")

    def __init__(self, default_s: float, size: int = 64) -> None:
        self._default = default_s
        self._samples: deque[float] = deque(maxlen=size)
        self._p95: float | None = None
        self._stale = 0

    def record(self, seconds: float) -> None:
        self._samples.append(seconds)
        self._stale += 1

    def recent(self) -> tuple[float, ...]:
        """The durations kept, oldest first (the admin status page reads its percentiles)."""
        return tuple(self._samples)

    def p95(self) -> float | None:
        """p95 of recent successes; None before there are 8 of them."""
        if self._stale >= _REFRESH or (self._p95 is None and len(self._samples) >= _MIN_SAMPLES):
            ordered = sorted(self._samples)
            self._p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
            self._stale = 0
        return self._p95

    def floor(self) -> float:
        """p90 of recent successes, or the configured minimum before there are 8 of them."""
        if len(self._samples) < _MIN_SAMPLES:
            return self._default
        ordered = sorted(self._samples)
        return max(self._default, ordered[int(len(ordered) * 0.9) - 1])
