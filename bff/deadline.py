"""One deadline per request, on the event loop's clock.

Everything that waits (each downstream attempt, each backoff) is bounded by `Deadline.at`,
so the request is answered by then whatever the downstreams do.
"""

from __future__ import annotations

import asyncio
import time


class Deadline:
    __slots__ = ("_loop", "at")

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
        # The time already spent is measured on perf_counter (bff.edge.arrival's clock);
        # the deadline itself is on the loop's clock, which every timer uses.
        waited = 0.0 if received_at is None else max(0.0, time.perf_counter() - received_at)
        self.at = self._loop.time() + budget_s - waited

    def remaining(self) -> float:
        """Seconds left (negative once past)."""
        return self.at - self._loop.time()
