"""One deadline per request, on the event loop's clock.

Everything that waits (each downstream attempt, each backoff) is bounded by `Deadline.at`,
so the request is answered by then whatever the downstreams do.
"""

from __future__ import annotations

import asyncio
import time


class Deadline:
    __slots__ = ("_loop", "_t0", "at")

    def __init__(self, budget_s: float, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self.at = self._loop.time() + budget_s
        # Durations use perf_counter: uvloop's clock ticks in whole milliseconds.
        self._t0 = time.perf_counter()

    def remaining(self) -> float:
        """Seconds left (negative once past)."""
        return self.at - self._loop.time()

    def elapsed(self) -> float:
        """Seconds since the request started (high resolution, for timings)."""
        return time.perf_counter() - self._t0
