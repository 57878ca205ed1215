"""The race of a hedged attempt, on its own: which answer wins, and what is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import gc

from bff.client import Leg, Reply, race
from bff.errors import DownstreamNotFound, DownstreamTimeout

# (reply, whether a retry could change it)
GOOD = (Reply(200, value="value"), False)
NOT_FOUND = (Reply.failed(DownstreamNotFound("reviews", "404"), 404), False)
FAILED = (Reply.failed(DownstreamTimeout("reviews", "slow")), True)


class Leggy:
    """A leg that answers `verdict` after `after` seconds, and remembers a cancellation."""

    def __init__(self, verdict: Leg, after: float) -> None:
        self.verdict = verdict
        self.after = after
        self.cancelled = False
        self.started = False

    async def run(self) -> Leg:
        self.started = True
        try:
            await asyncio.sleep(self.after)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return self.verdict

    def start(self) -> asyncio.Task[Leg]:
        return asyncio.get_running_loop().create_task(self.run())


class TestRace:
    async def test_a_fast_first_answer_sends_no_hedge(self) -> None:
        first, hedge = Leggy(GOOD, 0.0), Leggy(GOOD, 0.0)
        leg, outcome = await race(first.run(), 0.05, lambda _: hedge.start())
        assert leg is GOOD
        assert outcome is None
        assert not hedge.started

    async def test_the_hedge_wins_and_the_first_request_is_cancelled(self) -> None:
        first, hedge = Leggy(GOOD, 1.0), Leggy(NOT_FOUND, 0.0)
        leg, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert leg is NOT_FOUND, "a final answer (404) is a good answer"
        assert outcome == "won"
        assert first.cancelled

    async def test_a_won_hedge_leaves_no_cancel_behind(self) -> None:
        """The caller's task was cancelled out of the first request; that cancel is taken
        back, so an outer timeout or a later await does not see it."""
        first, hedge = Leggy(GOOD, 1.0), Leggy(GOOD, 0.0)
        _leg, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert outcome == "won"
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0
        await asyncio.sleep(0)  # would raise CancelledError if the cancel were still pending

    async def test_a_first_request_that_turns_the_cancel_into_an_error_still_loses(
        self,
    ) -> None:
        async def first() -> Leg:
            try:
                await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                raise ConnectionResetError("closed while cancelled") from None
            return GOOD

        hedge = Leggy(GOOD, 0.0)
        leg, outcome = await race(first(), 0.01, lambda _: hedge.start())
        assert (leg, outcome) == (GOOD, "won")
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0

    async def test_the_first_answers_first_and_the_hedge_is_cancelled(self) -> None:
        first, hedge = Leggy(GOOD, 0.05), Leggy(GOOD, 1.0)
        leg, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert leg is GOOD
        assert outcome == "lost"
        assert hedge.started
        assert hedge.cancelled, "the loser is cancelled, not waited for"

    async def test_a_failed_hedge_never_wins_while_the_first_may_succeed(self) -> None:
        first, hedge = Leggy(GOOD, 0.05), Leggy(FAILED, 0.0)
        leg, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert leg is GOOD
        assert outcome == "failed"

    async def test_a_failed_first_request_waits_for_the_hedge(self) -> None:
        first, hedge = Leggy(FAILED, 0.02), Leggy(GOOD, 0.05)
        leg, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert leg is GOOD
        assert outcome == "won"

    async def test_both_failed_the_first_requests_error_stands(self) -> None:
        other = (Reply.failed(DownstreamTimeout("reviews", "other")), True)
        first, hedge = Leggy(FAILED, 0.02), Leggy(other, 0.0)
        leg, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert leg is FAILED
        assert outcome == "failed"

    async def test_no_hedge_allowed_the_first_request_goes_on_alone(self) -> None:
        first = Leggy(GOOD, 0.03)
        leg, outcome = await race(first.run(), 0.01, lambda _: None)
        assert leg is GOOD
        assert outcome is None

    async def test_a_cancelled_caller_cancels_both_requests(self) -> None:
        first, hedge = Leggy(GOOD, 1.0), Leggy(GOOD, 1.0)
        task = asyncio.ensure_future(race(first.run(), 0.01, lambda _: hedge.start()))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert first.cancelled
        assert hedge.cancelled


class TestHedgeBudgetIsNotTheRetryBudget:
    def test_a_hedge_the_budget_refuses_is_not_counted_as_a_refused_retry(self) -> None:
        """`bff_retry_budget_exhausted_total` counts retries that were due and refused; a
        hedge refused by its own budget is none of those (it once landed there, service "")."""
        from typing import cast

        import aiohttp
        from bff_support import counted
        from yarl import URL

        from bff.client import DownstreamClient
        from bff.observability import metrics
        from bff.settings import DownstreamSettings
        from bff.settings.downstream import HedgeSettings

        settings = DownstreamSettings(
            "reviews",
            (URL("http://127.0.0.1:1"),),
            hedge=HedgeSettings(budget_ratio=0.0, budget_min=0),
        )
        client = DownstreamClient(
            settings, cast(aiohttp.ClientSession, None), propagation_margin_s=0.005
        )
        forget = metrics.watch(client)
        before = counted("bff_retry_budget_exhausted_total", service="reviews")
        assert client.hedging.admit(10.0, 0.005, False, (10, 0)) == "budget"
        assert counted("bff_retry_budget_exhausted_total", service="reviews") == before
        forget()


class TestCancelsThatAreNotOurs:
    """The race takes back its own cancel and only that: the caller's other cancels, earlier
    or at the same moment, still count, and nothing is left for the loop's handler."""

    async def test_a_cancel_the_caller_had_before_does_not_turn_a_won_hedge_into_a_cancel(
        self,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)  # caught, not taken back: cancelling() stays 1
        first, hedge = Leggy(GOOD, 1.0), Leggy(GOOD, 0.0)
        _, outcome = await race(first.run(), 0.01, lambda _: hedge.start())
        assert outcome == "won"
        assert task.cancelling() == 1
        task.uncancel()

    async def test_a_cancel_swallowed_with_ours_is_delivered(self) -> None:
        """The fan-out cancels the caller as the hedge wins; the first request turns the one
        CancelledError it gets into an answer (as the client turns errors into verdicts)."""

        async def first() -> Leg:
            try:
                await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                return FAILED, None
            return GOOD

        async def caller() -> None:
            me = asyncio.current_task()
            assert me is not None

            def start(_: float) -> asyncio.Task[Leg]:
                hedge = Leggy(GOOD, 0.0).start()
                hedge.add_done_callback(lambda _: me.cancel())  # just before the race sees it
                return hedge

            await race(first(), 0.01, start)
            await asyncio.sleep(1.0)

        task = asyncio.ensure_future(caller())
        await asyncio.wait([task], timeout=0.5)
        assert task.cancelled(), "the fan-out's cancel was lost"

    async def test_a_hedge_that_cannot_start_is_logged_and_the_first_goes_on(self) -> None:
        complaints = _loop_complaints()

        def start(_: float) -> asyncio.Task[Leg]:
            raise RuntimeError("a bug in starting the hedge")

        leg, outcome = await race(Leggy(GOOD, 0.03).run(), 0.01, start)
        assert (leg, outcome) == (GOOD, None)
        assert complaints == []

    async def test_a_hedge_that_failed_as_the_caller_was_cancelled_is_retrieved(self) -> None:
        complaints = _loop_complaints()

        async def caller() -> None:
            me = asyncio.current_task()
            assert me is not None

            async def broken_hedge() -> Leg:
                me.cancel()  # the fan-out's deadline, in the same turn as the hedge fails
                raise RuntimeError("a bug in the hedge")

            starter = lambda _: asyncio.ensure_future(broken_hedge())  # noqa: E731
            await race(Leggy(GOOD, 1.0).run(), 0.01, starter)

        task = asyncio.ensure_future(caller())
        await asyncio.wait([task])
        assert task.cancelled()
        del task
        gc.collect()
        await asyncio.sleep(0)
        assert complaints == []


def _loop_complaints() -> list[str]:
    """What reaches the loop's exception handler from now on (reset with the loop)."""
    complaints: list[str] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda _, context: complaints.append(context["message"])
    )
    return complaints
