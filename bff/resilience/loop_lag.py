"""How late this worker's event loop runs its timers: a starved loop makes every call look slow.

When the worker itself is saturated (CPU, GC), answers sit in the loop's queue and our
per-attempt timers fire although the service answered in time. Such a timeout says nothing
about the service, so the client treats it as neutral for the breaker and outlier ejection
while the lag is above the threshold (overload is admission's business).

One task per worker wakes every `interval` (10 ms) and measures how late it woke. The figure
rises at once and halves every `HALF_LIFE_S` after that, so one long stall is remembered for
a while. The tick is short against admission's 50 ms target on purpose: a probe that wakes
at one phase of a busy loop's turns sees one phase of its lateness (a 50 ms probe against a
loop held 80 ms at every turn read a steady 30 ms; a 10 ms one reads ~70 ms, what a request
arriving at a random moment waits). Each tick also hands the figure to admission
(bff.edge.admission, `on_tick`): how late the loop runs is how long anything it has not
reached yet waits. A hundred timers a second cost a worker next to nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from bff.observability import metrics

INTERVAL_S = 0.01
HALF_LIFE_S = 0.05


class LoopLag:
    __slots__ = ("_interval", "_on_tick", "_task", "lag")

    def __init__(
        self, interval_s: float = INTERVAL_S, on_tick: Callable[[float], None] | None = None
    ) -> None:
        self._interval = interval_s
        self._on_tick = on_tick
        self._task: asyncio.Task[None] | None = None
        self.lag = 0.0  # seconds

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        interval = self._interval
        while True:
            before = time.perf_counter()
            await asyncio.sleep(interval)
            elapsed = time.perf_counter() - before
            late = max(0.0, elapsed - interval)
            metrics.LOOP_LAG.observe((), late)
            self.lag = max(late, self.lag * 0.5 ** (elapsed / HALF_LIFE_S))
            if self._on_tick is not None:
                self._on_tick(self.lag)
