"""How late this worker's event loop runs its timers: a starved loop makes every call look slow.

When the worker itself is saturated (CPU, GC), answers sit in the loop's queue and our
per-attempt timers fire although the service answered in time. Such a timeout says nothing
about the service, so the client base treats it as neutral for the breaker and outlier
ejection while the lag is above the threshold (overload is the load shedder's business).

One task per worker wakes every `interval` and measures how late it woke. The figure rises at
once and halves at every tick after that, so one long stall is remembered for a few ticks.
Each tick is also a sample for admission (bff.edge.admission, `on_tick`): how long the
probe's timer waited is how long anything the loop has not reached yet waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from bff.observability import metrics


class LoopLag:
    __slots__ = ("_interval", "_on_tick", "_task", "lag")

    def __init__(
        self, interval_s: float = 0.05, on_tick: Callable[[float], None] | None = None
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
            late = max(0.0, time.perf_counter() - before - interval)
            metrics.LOOP_LAG.observe((), late)
            self.lag = max(late, self.lag / 2)
            if self._on_tick is not None:
                self._on_tick(late)
