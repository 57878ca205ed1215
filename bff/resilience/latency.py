"""Recently observed latency of a service, for deciding whether a retry can still finish.

Keeps the last N successful attempt durations; `floor()` is their 90th percentile, so the
"is there time for one more attempt?" question is answered from what the service really does,
not from a constant. Recording is O(1) on the hot path; the percentile is computed only when a
retry is being considered.
"""

from __future__ import annotations

from collections import deque


class LatencyWindow:
    __slots__ = ("_default", "_samples")

    def __init__(self, default_s: float, size: int = 64) -> None:
        self._default = default_s
        self._samples: deque[float] = deque(maxlen=size)

    def record(self, seconds: float) -> None:
        self._samples.append(seconds)

    def floor(self) -> float:
        """p90 of recent successes, or the configured minimum before there are 8 of them."""
        if len(self._samples) < 8:
            return self._default
        ordered = sorted(self._samples)
        return max(self._default, ordered[int(len(ordered) * 0.9) - 1])
