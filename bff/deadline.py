"""One deadline per request, on the event loop's clock.

Everything that waits (each downstream attempt, each backoff) is bounded by `Deadline.at`,
so the request is answered by then whatever the downstreams do.
"""

from __future__ import annotations

import asyncio
import time


class Deadline:
    __slots__ = ("_loop", "_t0", "at")

    def __init__(
        self,
        budget_s: float,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        received_at: float | None = None,
    ) -> None:
        """`received_at`: the perf_counter time the request arrived (bff.edge.arrival); the
        time it has waited since counts against `budget_s`. None: it starts now."""
        self._loop = loop or asyncio.get_running_loop()
        # Durations use perf_counter: uvloop's clock ticks in whole milliseconds.
        now = time.perf_counter()
        self._t0 = now if received_at is None else min(received_at, now)
        self.at = self._loop.time() + budget_s - (now - self._t0)

    def remaining(self) -> float:
        """Seconds left (negative once past)."""
        return self.at - self._loop.time()

    def elapsed(self) -> float:
        """Seconds since the request started (high resolution, for timings)."""
        return time.perf_counter() - self._t0
