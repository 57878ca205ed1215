"""Single flight: concurrent callers of one key share one call, in this worker.

The first caller (the leader) starts the call as a task of its own; every caller, the leader
included, waits on it through `asyncio.shield`, each under its own deadline. So:

- a caller that leaves (its deadline, its client gone) stops waiting, and only that caller:
  the call goes on for the others;
- when the last caller leaves, nobody needs the answer any more and the call is cancelled;
  the key is freed at once, so a caller arriving then starts a new call instead of joining
  one that is being cancelled;
- an exception of the call reaches every caller still waiting.

What may be shared is the caller's decision, through the key: this module knows nothing of
identities (see `bff.cache.keys`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


@dataclass(slots=True)
class _Call(Generic[T]):
    task: asyncio.Task[T]
    waiters: int = 0


class SingleFlight(Generic[T]):
    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[str, _Call[T]] = {}

    def __len__(self) -> int:
        """Calls in flight."""
        return len(self._calls)

    def in_flight(self, key: str) -> bool:
        return key in self._calls

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The result of `call()`, made once for all concurrent callers of `key`.

        Returns (result, joined): `joined` is True for a caller that found the call already
        running. Cancel the caller (e.g. `asyncio.timeout`) to stop waiting.
        """
        flight = self._calls.get(key)
        joined = flight is not None
        if flight is None:
            flight = _Call(asyncio.ensure_future(call()))
            self._calls[key] = flight
            flight.task.add_done_callback(lambda _: self._forget(key, flight))
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task), joined
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                self._forget(key, flight)
                flight.task.cancel()

    def _forget(self, key: str, flight: _Call[T]) -> None:
        if self._calls.get(key) is flight:
            del self._calls[key]
