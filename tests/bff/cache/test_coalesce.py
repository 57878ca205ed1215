"""Single flight: one call per key for concurrent callers, each under its own deadline."""

from __future__ import annotations

import asyncio
import gc

import pytest

from bff.cache.coalesce import SingleFlight


class Service:
    """Counts calls; each call waits until the test releases it."""

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0
        self.release = asyncio.Event()

    async def call(self) -> str:
        self.calls += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            await asyncio.sleep(0.02)  # a cleanup that takes a while (a connection closed)
            raise
        return f"answer {self.calls}"


class TestSingleFlight:
    """Concurrent callers of a key share one call; leaving never hurts the others."""

    async def test_herd_makes_one_call(self) -> None:
        flight: SingleFlight[str] = SingleFlight()
        service = Service()
        herd = [asyncio.create_task(flight.run("k", service.call)) for _ in range(500)]
        await asyncio.sleep(0)
        service.release.set()
        results = await asyncio.gather(*herd)
        assert service.calls == 1
        assert {r for r, _ in results} == {"answer 1"}
        assert sum(joined for _, joined in results) == 499
        assert len(flight) == 0

    async def test_other_keys_are_separate(self) -> None:
        flight: SingleFlight[str] = SingleFlight()
        service = Service()
        service.release.set()
        await asyncio.gather(flight.run("a", service.call), flight.run("b", service.call))
        assert service.calls == 2

    async def test_a_waiter_leaving_does_not_cancel_the_call(self) -> None:
        flight: SingleFlight[str] = SingleFlight()
        service = Service()
        patient = asyncio.create_task(flight.run("k", service.call))
        await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await flight.run("k", service.call)  # leaves at its own deadline
        service.release.set()
        assert await patient == ("answer 1", False)
        assert service.cancelled == 0

    async def test_the_leader_leaving_hands_the_call_to_a_waiter(self) -> None:
        """The leader's call runs in the leader's task and ends with it; a follower still
        waiting makes the call itself (and a third caller joins that one)."""
        flight: SingleFlight[str] = SingleFlight()
        service = Service()
        leader = asyncio.create_task(flight.run("k", service.call))
        await asyncio.sleep(0)
        followers = [asyncio.create_task(flight.run("k", service.call)) for _ in range(2)]
        await asyncio.sleep(0)
        leader.cancel()
        await asyncio.sleep(0.05)  # the leader's call cleans up, then hands over
        service.release.set()
        assert sorted(await asyncio.gather(*followers)) == [("answer 2", False), ("answer 2", True)]
        assert (service.calls, service.cancelled) == (2, 1)
        assert len(flight) == 0

    async def test_a_follower_waits_until_its_own_deadline_across_hand_overs(self) -> None:
        """Its deadline is one instant, not a timeout restarted with each call it waits for."""
        flight: SingleFlight[str] = SingleFlight()
        loop = asyncio.get_running_loop()

        async def never() -> str:
            await asyncio.sleep(10)
            return "late"

        leader = asyncio.create_task(flight.run("k", never))
        await asyncio.sleep(0)
        second = asyncio.create_task(flight.run("k", never))  # takes over from the leader
        await asyncio.sleep(0)
        started = loop.time()
        third = asyncio.create_task(flight.run("k", never, until=started + 0.1))
        await asyncio.sleep(0.08)
        leader.cancel()  # hand-over: the third now waits for the second's call
        with pytest.raises(TimeoutError):
            await third
        assert loop.time() - started < 0.15, "the wait restarted at the hand-over"
        second.cancel()
        await asyncio.gather(leader, second, return_exceptions=True)
        assert len(flight) == 0

    async def test_a_follower_waits_at_most_its_timeout(self) -> None:
        flight: SingleFlight[str] = SingleFlight()
        service = Service()
        leader = asyncio.create_task(flight.run("k", service.call))
        await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            await flight.run("k", service.call, until=asyncio.get_running_loop().time() + 0.01)
        service.release.set()
        assert await leader == ("answer 1", False)
        assert (service.calls, service.cancelled) == (1, 0)

    async def test_cancelled_when_nobody_waits(self) -> None:
        flight: SingleFlight[str] = SingleFlight()
        service = Service()
        waiters = [asyncio.create_task(flight.run("k", service.call)) for _ in range(3)]
        await asyncio.sleep(0)
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        await asyncio.sleep(0)
        assert service.cancelled == 1
        assert not flight.in_flight("k")
        # A caller arriving while that call is still cancelling starts afresh rather than
        # joining it (and getting its CancelledError).
        service.release.set()
        assert await flight.run("k", service.call) == ("answer 2", False)

    async def test_an_error_reaches_every_waiter(self) -> None:
        flight: SingleFlight[str] = SingleFlight()
        gate = asyncio.Event()

        async def failing() -> str:
            await gate.wait()
            raise ConnectionResetError("down")

        waiters = [asyncio.create_task(flight.run("k", failing)) for _ in range(3)]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, ConnectionResetError) for r in results)
        assert len(flight) == 0

    async def test_an_error_nobody_waits_for_any_more_is_not_logged(self) -> None:
        """A follower left (its timeout), then the leader's call failed: the error reaches
        the leader and nobody else, and asyncio has nothing to complain about."""
        complaints: list[str] = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: complaints.append(context["message"]))
        flight: SingleFlight[str] = SingleFlight()
        gate = asyncio.Event()

        async def failing() -> str:
            await gate.wait()
            raise ConnectionResetError("down")

        leader = asyncio.create_task(flight.run("k", failing))
        await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            await flight.run("k", failing, until=asyncio.get_running_loop().time() + 0.01)
        gate.set()
        await asyncio.wait([leader])
        assert isinstance(leader.exception(), ConnectionResetError)
        del leader
        gc.collect()
        await asyncio.sleep(0)
        loop.set_exception_handler(None)
        assert complaints == []
