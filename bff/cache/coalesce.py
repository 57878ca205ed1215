"""Single flight: concurrent callers of one key share one call, in this worker.

The first caller (the leader) makes the call in its own task: no task, no shield, nothing
extra on the path nearly every call takes (most keys never see a second caller). Callers
that arrive while it runs (followers) wait for its result, each until its own deadline
(`until`). So:

- a follower that leaves (its deadline, its client gone) stops waiting, and only that
  follower: the call goes on for the others;
- when the leader leaves (cancelled: its request answered without this part), its call ends
  with it; a follower still waiting then takes over with a call of its own (the others join
  that one). The key is freed at once, so nobody joins a call being cancelled;
- an exception of the call reaches every follower still waiting.

The leader's call is bounded by the call itself (ours: by the leader's request deadline,
through the client's per-attempt timeouts: when that deadline ends the call, its timeout is
what every follower gets); `until` bounds a follower's wait for somebody else's.

What may be shared is the caller's decision, through the key: this module knows nothing of
identities (see `bff.cache.keys`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _HandedOver(Exception):
    """The leader left before its call ended: a follower makes the call instead."""


class _Call(Generic[T]):
    __slots__ = ("result",)

    def __init__(self) -> None:
        self.result: asyncio.Future[T] | None = None  # made when the first follower comes


class SingleFlight(Generic[T]):
    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[str, _Call[T]] = {}

    def __len__(self) -> int:
        """Calls in flight."""
        return len(self._calls)

    def in_flight(self, key: str) -> bool:
        return key in self._calls

    async def run(
        self, key: str, call: Callable[[], Awaitable[T]], until: float | None = None
    ) -> tuple[T, bool]:
        """The result of `call()`, made once for all concurrent callers of `key`.

        Returns (result, joined): `joined` is True for a caller that got another caller's
        result. `until`: the loop time after which this caller stops waiting for another
        caller's call (TimeoutError), however many calls it waited for. Cancel the caller to
        stop waiting.
        """
        while True:
            flight = self._calls.get(key)
            if flight is None:
                return await self._lead(key, call), False
            try:
                return await self._follow(flight, until), True
            except _HandedOver:
                continue  # the first follower back leads a new call, the others join it

    async def _lead(self, key: str, call: Callable[[], Awaitable[T]]) -> T:
        flight: _Call[T] = _Call()
        self._calls[key] = flight
        try:
            value = await call()
        except BaseException as exc:
            self._forget(key, flight)
            if (result := flight.result) is not None:
                handed = isinstance(exc, asyncio.CancelledError)
                result.set_exception(_HandedOver() if handed else exc)
                result.exception()  # retrieved: followers that left are not logged about
            raise
        self._forget(key, flight)
        if flight.result is not None:
            flight.result.set_result(value)
        return value

    async def _follow(self, flight: _Call[T], until: float | None) -> T:
        if flight.result is None:
            flight.result = asyncio.get_running_loop().create_future()
        async with asyncio.timeout_at(until):
            # Shielded: a follower that leaves must not cancel what the others wait for.
            return await asyncio.shield(flight.result)

    def _forget(self, key: str, flight: _Call[T]) -> None:
        if self._calls.get(key) is flight:
            del self._calls[key]
