"""Backoff for aiohttp-retry: exponential with full jitter, `Retry-After` when it fits.

aiohttp-retry asks `get_timeout(attempt)` how long to sleep before the next attempt. Whether
there *is* a next attempt is decided earlier, by the client base, which knows the deadline and
the retry budget and raises a retryable error only when both allow it; the delay it computed
(including a server's `Retry-After`) is handed over through `PLANNED_DELAY`.
"""

from __future__ import annotations

import random
from contextvars import ContextVar

from aiohttp import ClientResponse
from aiohttp_retry import RetryOptionsBase

# Set by the client just before it raises the retryable error; aiohttp-retry catches it and
# calls `get_timeout` at once, in the same task, so this is the delay of *this* call's retry.
# (A context variable rather than per-call options: building RetryOptionsBase cost ~8 µs per
# downstream call, on every call, for a value that matters only on the rare retry. Issue 5.)
PLANNED_DELAY: ContextVar[float] = ContextVar("bff_planned_retry_delay", default=0.0)


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))] (attempt counts from 1)."""
    return random.uniform(0.0, min(max_s, base_s * (2 ** (attempt - 1))))


class DeadlineBoundRetry(RetryOptionsBase):
    """Retry options, one per client: only `retryable` is retried, after `PLANNED_DELAY`."""

    def __init__(self, attempts: int, retryable: type[Exception]) -> None:
        super().__init__(
            attempts=attempts,
            statuses=set(),
            exceptions={retryable},
            methods={"GET", "HEAD"},
            retry_all_server_errors=False,
        )

    def get_timeout(self, attempt: int, response: ClientResponse | None = None) -> float:
        return PLANNED_DELAY.get()
