"""aiohttp-retry, fenced: its loop drives our attempts. No other module imports aiohttp_retry.

aiohttp-retry's request context is a loop around one function per attempt: it calls
`request_func(method, url, headers=..., trace_request_ctx=...)`. When that returns a response
(the loop reads its method and status, and retries none: we list no status), the call is over.
When it raises one of `retry_options.exceptions`, the loop sleeps
`retry_options.get_timeout(attempt)` and calls it again, up to `retry_options.attempts` times.
That function is the seam. We hand the loop a closure over one call's attempt, and one
`_Retrying` object per call (stamina keeps retry state on an object the same way): an attempt
that wants another one raises `RetryableAttempt(error, delay)`, the seam puts the delay on the
call's `_Retrying`, and the loop reads it from there. Whether to retry and after how long is
decided by the attempt (deadline, budget, breaker, `Retry-After`); the loop only counts and
sleeps.

The request context is private to aiohttp-retry (`RetryClient` builds it around a session's
`request` method, which would force us to pose as a `ClientSession`);
tests/bff/test_resilience_client.py pins the behaviour we rely on, so an upgrade that changes
it fails loudly there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientResponse
from aiohttp_retry import RequestParams, RetryOptionsBase
from aiohttp_retry.client import _RequestContext

from bff.errors import DownstreamError

Attempt = Callable[[], Awaitable[ClientResponse]]


class RetryableAttempt(Exception):
    """Raised by an attempt when a retry has been planned: its error and the delay before it."""

    def __init__(self, error: DownstreamError, delay: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay


class _Retrying(RetryOptionsBase):
    """One call's retry options: only `RetryableAttempt` is retried, after its own delay."""

    # As class attributes: RetryOptionsBase.__init__ builds sets on every call (~8 us), for
    # values that never change.
    statuses = frozenset[int]()
    exceptions = (RetryableAttempt,)
    methods = frozenset({"GET"})
    retry_all_server_errors = False
    evaluate_response_callback = None

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        self.delay = 0.0

    def get_timeout(self, attempt: int, response: ClientResponse | None = None) -> float:
        return self.delay


class _Quiet:
    """aiohttp-retry logs every attempt at debug level; our own logs say more, once."""

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        pass

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        pass

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        pass


_QUIET = _Quiet()
_PARAMS = [RequestParams("GET", "")]  # read only: the URL is the attempt's business


async def run_attempts(attempt: Attempt, max_attempts: int) -> None:
    """Run `attempt` until it returns, raises a final error, or `max_attempts` are spent."""
    retrying = _Retrying(max_attempts)

    async def request(method: str, url: str, **_: Any) -> ClientResponse:
        try:
            return await attempt()
        except RetryableAttempt as exc:
            retrying.delay = exc.delay
            raise

    try:
        await _RequestContext(request, _PARAMS, _QUIET, retrying)
    except RetryableAttempt as exc:  # only when the loop ran out of attempts itself
        raise exc.error from None
