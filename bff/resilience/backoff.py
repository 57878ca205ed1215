"""Backoff for aiohttp-retry: exponential with full jitter, `Retry-After` when it fits.

aiohttp-retry asks `get_timeout(attempt)` how long to sleep before the next attempt. Whether
there *is* a next attempt is decided earlier, by the client base, which knows the deadline and
the retry budget and raises a retryable error only when both allow it; the delay it computed
(including a server's `Retry-After`) is handed over through `CallState.next_delay`.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from aiohttp import ClientResponse
from aiohttp_retry import RetryOptionsBase

if TYPE_CHECKING:
    from bff.clients.call import CallState


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))] (attempt counts from 1)."""
    return random.uniform(0.0, min(max_s, base_s * (2 ** (attempt - 1))))


class DeadlineBoundRetry(RetryOptionsBase):
    """Per-call retry options: only `RetryableAttempt` is retried, after the planned delay."""

    def __init__(self, state: CallState, attempts: int, retryable: type[Exception]) -> None:
        super().__init__(
            attempts=attempts,
            statuses=set(),
            exceptions={retryable},
            methods={"GET", "HEAD"},
            retry_all_server_errors=False,
        )
        self._state = state

    def get_timeout(self, attempt: int, response: ClientResponse | None = None) -> float:
        return self._state.next_delay
