"""The race of a hedged attempt: the first GOOD answer of two wins, the other is cancelled.

    wait(primary, delay)        the first request alone, for up to `delay`
    └─ start_hedge()            None: no hedge (budget, deadline, breaker...); the first
       │                        request goes on alone
       └─ first_good(...)       whichever answers first with a final answer (a value, or an
                                error a retry would not change, like 404) wins; a failed leg
                                (timeout, 5xx, reset) never wins while the other may still
                                succeed; when both fail, the first request's error stands

The loser is cancelled and awaited, so aiohttp releases its connection before we return,
also when the caller itself is cancelled (the fan-out answered at its deadline).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from bff.clients.classify import Verdict
from bff.clients.transport import Answer

Leg = tuple[Verdict, Answer | None]
HedgeOutcome = Literal["won", "lost", "failed"]
# Called with how late (seconds) the hedge timer fired: a loop that runs late now has most
# likely read the first answer already, and it waits in our own queue.
StartHedge = Callable[[float], "asyncio.Task[Leg] | None"]


def _good(leg: Leg) -> bool:
    verdict = leg[0]
    return verdict.error is None or not verdict.retryable


async def race(
    primary_leg: Coroutine[Any, Any, Leg], delay: float, start_hedge: StartHedge
) -> tuple[Leg, HedgeOutcome | None]:
    """The answer to use, and what became of the hedge (None: none was sent)."""
    loop = asyncio.get_running_loop()
    primary = loop.create_task(primary_leg)
    hedge: asyncio.Task[Leg] | None = None
    try:
        late = await _late_unless_done(primary, delay)
        if late is not None:
            hedge = start_hedge(late)
        if hedge is None:
            return await primary, None
        winner = await _first_good(primary, hedge)
        outcome: HedgeOutcome = "won" if winner is hedge else "lost"
        if hedge.done() and not _good(hedge.result()):
            outcome = "failed"
        return winner.result(), outcome
    finally:
        await _cancel_and_wait(primary, hedge)


async def _late_unless_done(task: asyncio.Task[Leg], delay: float) -> float | None:
    """Wait for `task` for at most `delay` seconds (one timer, one future: this runs on
    every call of a service that hedges). None when it finished; else how many seconds
    later than asked the timer woke us."""
    loop = asyncio.get_running_loop()
    due = time.perf_counter() + delay
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_later(delay, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return None if task.done() else max(0.0, time.perf_counter() - due)


async def _first_good(primary: asyncio.Task[Leg], hedge: asyncio.Task[Leg]) -> asyncio.Task[Leg]:
    pending: set[asyncio.Task[Leg]] = {primary, hedge}
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in (primary, hedge):  # both done at once: the first request is preferred
            if task in done and _good(task.result()):
                return task
    return primary


async def _cancel_and_wait(*tasks: asyncio.Task[Leg] | None) -> None:
    """Cancel what is still running and wait until it has let go of its connection. Our own
    cancellation, should it come now, still goes through (`asyncio.wait` never swallows it)."""
    unfinished = [t for t in tasks if t is not None and not t.done()]
    for task in unfinished:
        task.cancel()
    if unfinished:
        await asyncio.wait(unfinished)
    for task in unfinished:
        if not task.cancelled():
            task.exception()  # retrieved: a bug in a loser is not logged as "never retrieved"
