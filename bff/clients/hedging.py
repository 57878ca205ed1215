"""The race of a hedged attempt: the first GOOD answer of two wins, the other is cancelled.

    first request               runs in the caller's own task (no task of its own: this
    │                           runs on every call of a service that hedges)
    ├─ timer at `delay`         start_hedge(): None means no hedge (budget, deadline,
    │                           breaker...) and the first request goes on alone
    └─ hedge task               whichever answers first with a final answer (a value, or an
                                error a retry would not change, like 404) wins; a failed leg
                                (timeout, 5xx, reset) never wins while the other may still
                                succeed; when both fail, the first request's error stands

When the hedge wins, the caller's task is cancelled out of the first request the way
`asyncio.timeout` does it (a cancel it takes back with `uncancel()`), so the first request
has let go of its connection before we return. A hedge that loses is cancelled and awaited,
also when the caller itself is cancelled (the fan-out answered at its deadline).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from bff.clients.classify import Verdict
from bff.clients.transport import Answer
from bff.observability.logging import log

Leg = tuple[Verdict, Answer | None]
HedgeOutcome = Literal["won", "lost", "failed"]
# Called with how late (seconds) the hedge timer fired: a loop that runs late now has most
# likely read the first answer already, and it waits in our own queue.
StartHedge = Callable[[float], "asyncio.Task[Leg] | None"]


def _good(leg: Leg) -> bool:
    verdict = leg[0]
    return verdict.error is None or not verdict.retryable


def _good_task(task: asyncio.Task[Leg]) -> bool:
    """A finished hedge whose answer may be used (one that raised never is)."""
    return not task.cancelled() and task.exception() is None and _good(task.result())


class _Race:
    """The state the timer and the hedge's done callback share with the caller's task."""

    __slots__ = ("due", "first_running", "hedge", "hedge_won", "start_hedge", "task")

    def __init__(self, task: asyncio.Task[Any], due: float, start_hedge: StartHedge) -> None:
        self.task = task
        self.due = due
        self.start_hedge = start_hedge
        self.hedge: asyncio.Task[Leg] | None = None
        self.first_running = True
        self.hedge_won = False  # we cancelled the caller's task out of the first request

    def fire(self) -> None:
        """The hedge timer: the first request has not answered in time. A bug in starting
        the hedge must not go to the loop's handler unseen: logged, and no hedge."""
        try:
            hedge = self.start_hedge(max(0.0, time.perf_counter() - self.due))
        except Exception:
            log.exception("hedge_not_started")
            return
        if hedge is not None:
            self.hedge = hedge
            hedge.add_done_callback(self.hedge_done)

    def hedge_done(self, hedge: asyncio.Task[Leg]) -> None:
        if self.first_running and _good_task(hedge):
            self.hedge_won = True
            self.task.cancel()


async def race(
    primary_leg: Coroutine[Any, Any, Leg], delay: float, start_hedge: StartHedge
) -> tuple[Leg, HedgeOutcome | None]:
    """The answer to use, and what became of the hedge (None: none was sent)."""
    task = asyncio.current_task()
    assert task is not None, "race runs in a task"
    # Cancels the caller already had (taken or not) are not ours: compared with this count.
    before = task.cancelling()
    state = _Race(task, time.perf_counter() + delay, start_hedge)
    timer = asyncio.get_running_loop().call_later(delay, state.fire)
    try:
        try:
            leg = await primary_leg
        except BaseException:
            # Our cancel (the hedge won) comes out as CancelledError, or as whatever the first
            # request turned it into on its way out; either way it is taken back. A cancel of
            # the caller by somebody else in the meantime still goes through, as a cancel.
            if not state.hedge_won or state.hedge is None:
                raise
            if task.uncancel() > before:
                raise asyncio.CancelledError from None
            return state.hedge.result(), "won"
        finally:
            state.first_running = False
            timer.cancel()
        # The first request swallowed our cancel and answered anyway (one CancelledError is
        # delivered for any number of cancels: somebody else's may have been swallowed too).
        if state.hedge_won and task.uncancel() > before:
            raise asyncio.CancelledError
        hedge = state.hedge
        if hedge is None:
            return leg, None
        if not _good(leg) and not hedge.done():
            await asyncio.wait([hedge])  # a failed first request waits for the hedge
        if hedge.done():
            if _good_task(hedge) and not _good(leg):
                return hedge.result(), "won"
            return leg, "failed" if not _good_task(hedge) else "lost"
        return leg, "lost"
    finally:
        await _cancel_and_wait(state.hedge)


async def _cancel_and_wait(task: asyncio.Task[Leg] | None) -> None:
    """Cancel the hedge if it still runs and wait until it has let go of its connection. Our
    own cancellation, should it come now, still goes through (`asyncio.wait` never swallows
    it)."""
    if task is None:
        return
    if task.done():
        if not task.cancelled():
            task.exception()  # retrieved, also when it failed while nobody was looking
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: a bug in a loser is not logged as "never retrieved"
