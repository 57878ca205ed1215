"""The shared client: every downstream call goes through this policy, in this order, and
comes back as one `Reply`, whatever happened.

    fetch()              bulkhead: per-service cap on calls in flight; full -> overloaded
    └─ retry loop        attempts and backoff from the service's retry schedule; a retry is
       │                 planned only when the error is retryable, attempts remain, the
       │                 breaker is not open, the deadline still holds the backoff plus the
       │                 service's recent p90, and the retry budget has a token (spent last)
       └─ _attempt()     no time left -> timeout; breaker permit or circuit_open (no network
          │              call); an instance (power of two choices, a retry avoids the last
          │              one); timeout = min(per-attempt, what is left of the deadline);
          │              X-Request-Timeout-Ms = that minus a margin
          ├─ _send()     the GET, body read under a cap and decoded into the part's type;
          │              its verdict -> breaker, outlier ejection, latency window
          └─ hedge       no answer after the service's p95: maybe a second request to another
                         instance, with its own permit and span (`_Race`)

`Reply` is the one result: a 200 (its value, body and headers), a 304 (headers), a 404 that
stands for a value (`Part.on_404`), or the `DownstreamError` that ends the call. The caller
branches on it; nothing comes back through a side door, and only a cancellation (or a bug of
ours) is raised.

What one attempt's answer says about the service (breaker and outlier ejection):

    200, body decodes, ids match     value                  success
    304 to our If-None-Match         headers                success
    304, no If-None-Match sent       bad_response           neutral: not an answer we asked for
    200, body unusable               bad_response           neutral: one id's problem
    404                              the part's 404 value   success: a live service
                                     or its not-found error
    other 1xx-4xx                    unavailable            success: a live service
    502, 503                         unavailable            failure, retryable
    504                              timeout                failure*, retryable
    other 5xx                        unavailable            failure
    no answer in time                timeout                failure*, retryable
    refused, reset, cut off          unavailable            failure, retryable
    an answer that is not HTTP       bad_response           neutral

* only when the attempt had its full per-attempt timeout and our own loop was not running
  late: a timeout caused by a client's short budget, or by this worker being starved, says
  nothing about the service, or any client could open our breakers with a tiny budget. A
  cancellation by the BFF itself is neutral too.

The retry loop is ours, not aiohttp-retry's: its loop wants a request function returning an
aiohttp `ClientResponse` for a URL fixed up front, while an attempt here picks its instance,
permit and timeout when it starts and answers with a value. aiohttp-retry's public retry
options give the schedule (`RetrySchedule`: attempts, full-jitter backoff).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import math
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import aiohttp
import msgspec
from aiohttp import ClientResponse
from aiohttp_retry import RetryOptionsBase
from opentelemetry.trace import Tracer

from bff.context import PartCall, RequestContext
from bff.errors import (
    BadResponse,
    CircuitOpen,
    DownstreamError,
    DownstreamTimeout,
    DownstreamUnavailable,
    Overloaded,
)
from bff.observability import metrics
from bff.observability.logging import log
from bff.observability.spans import AttemptSpan
from bff.resilience.breaker import Permit, ServiceBreaker, TransitionHook
from bff.resilience.loop_lag import LoopLag
from bff.resilience.policy import HEDGE_LATE_S, HedgePolicy, LatencyWindow, RetryBudget
from bff.resilience.pool import Instance, InstancePool
from bff.settings import DownstreamSettings, RetrySettings

__all__ = ["DownstreamClient", "Endpoint", "Reply", "mapped_error", "retry_after"]

_ERROR_BODY_CAP = 64 * 1024
_RETRYABLE_STATUSES = frozenset({502, 503, 504})
# Longer than any deadline: a `Retry-After` beyond it just means "no retry this time".
_RETRY_AFTER_CAP_S = 3600.0
# The breaker and the pool hear these; "neutral" reaches neither.
_SUCCESS, _FAILURE, _NEUTRAL = 0, 1, 2


class Endpoint(Protocol):
    """What a call needs of the part it fetches (`bff.parts.Part` is one)."""

    @property
    def prefix(self) -> str: ...
    @property
    def on_404(self) -> Callable[[], Any] | None: ...
    @property
    def not_found(self) -> type[DownstreamError]: ...
    def decode(self, body: bytes, product_id: str) -> Any: ...


class Reply:
    """What one call came to. `error` None: an answer (`status` 200, 304, or 404 standing for
    `value`); else the error that ends the call (`status` is the last HTTP status, 0 when none).
    """

    __slots__ = ("body", "error", "headers", "status", "value")

    def __init__(
        self,
        status: int,
        *,
        value: Any = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        error: DownstreamError | None = None,
    ) -> None:
        self.status = status
        self.value = value
        self.body = body
        self.headers = headers  # the service's, case-insensitive (aiohttp's)
        self.error = error

    @classmethod
    def failed(cls, error: DownstreamError, status: int = 0) -> Reply:
        return cls(status, error=error)

    def __repr__(self) -> str:
        return f"Reply({self.status}, error={self.error!r})"


# One request of an attempt (the first, or its hedge): its reply, and whether a retry could
# change it.
Leg = tuple[Reply, bool]


# -- foreign exceptions -----------------------------------------------------------------------

# Errors of decoding a body: msgspec's own, `bytes.decode` (UnicodeDecodeError is a
# ValueError), Python's recursion limit on deep nesting, int/float conversions.
_DECODE_ERRORS = (
    msgspec.DecodeError,
    ValueError,
    RecursionError,
    OverflowError,
    TypeError,
    LookupError,
)


def mapped_error(
    service: str, exc: Exception, timeout_s: float | None = None
) -> DownstreamError | None:
    """The `DownstreamError` a foreign exception stands for, or None for a bug of ours:

        TimeoutError                      -> DownstreamTimeout      no answer in time
        aiohttp.ClientPayloadError        -> DownstreamUnavailable  the body broke off
        aiohttp.ClientResponseError       -> BadResponse            an answer that is not HTTP
        aiohttp.ClientError, OSError      -> DownstreamUnavailable  refused, reset, closed
        msgspec.DecodeError, ValueError,  -> BadResponse            a body we cannot use
        RecursionError, OverflowError,       (UnicodeDecodeError is a ValueError)
        TypeError, LookupError

    Called from the one `except` of an attempt, so a call that succeeds pays nothing for it
    (a context manager around every send cost ~1 us a call). Anything else propagates: the
    fan-out logs it with its traceback and answers for the part."""
    if isinstance(exc, DownstreamError):
        return exc
    if isinstance(exc, TimeoutError):
        if timeout_s is None:
            return DownstreamTimeout(service, "no answer in time")
        return DownstreamTimeout(service, f"no answer in {timeout_s * 1000:.0f} ms")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return DownstreamUnavailable(service, describe(exc))
    if isinstance(exc, aiohttp.ClientResponseError):
        return BadResponse(service, describe(exc))
    if isinstance(exc, aiohttp.ClientError | OSError):
        return DownstreamUnavailable(service, describe(exc))
    if isinstance(exc, _DECODE_ERRORS):
        return BadResponse(service, describe(exc))
    return None


def retry_after(value: str | None) -> float | None:
    """Seconds a server asked us to wait (delta-seconds or an HTTP date), or None.

    Never raises: "²" (`isdigit()` accepts it, `int()` does not), "-1", "1e9", dates in year
    9999 and garbage are all either None or a finite number in [0, one hour].
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Leading zeros are valid delta-seconds; past them, 8 digits are already beyond the
        # cap (and int() of a long string costs).
        return min(float(int(value.lstrip("0")[:8] or "0")), _RETRY_AFTER_CAP_S)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError, IndexError, OSError):
        return None
    if not math.isfinite(when):
        return None
    return min(max(0.0, when - time.time()), _RETRY_AFTER_CAP_S)


def describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a library exception whose __str__ breaks must not escape from here
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- the retry schedule -----------------------------------------------------------------------


class RetrySchedule(RetryOptionsBase):
    """aiohttp-retry's options for one service: how many attempts, and the backoff before
    attempt n+1 (full jitter: uniform in [0, min(max, base * 2^(n-1))], the AWS architecture
    blog's choice: it spreads the retries of many callers the most)."""

    def __init__(self, retry: RetrySettings) -> None:
        super().__init__(attempts=retry.max_attempts, methods={"GET"})
        self._base = retry.backoff_base_s
        self._max = retry.backoff_max_s

    def get_timeout(self, attempt: int, response: ClientResponse | None = None) -> float:
        """`attempt`: the attempts made so far (1 after the first)."""
        return random.uniform(0.0, min(self._max, self._base * (2 ** (attempt - 1))))


# -- the client -------------------------------------------------------------------------------


class DownstreamClient:
    """Policy-wrapped GET client for one service (all its instances)."""

    def __init__(
        self,
        settings: DownstreamSettings,
        session: aiohttp.ClientSession,
        *,
        propagation_margin_s: float,
        on_breaker_transition: TransitionHook | None = None,
        tracer: Tracer | None = None,
        loop_lag: LoopLag | None = None,
        lag_neutral_s: float = 0.02,
    ) -> None:
        self.name = settings.name
        self.settings = settings
        self.session = session
        self.margin = propagation_margin_s
        self.attempt_timeout = settings.attempt_timeout_s
        self.max_in_flight = settings.max_in_flight
        self.max_body_bytes = settings.max_body_bytes
        self.loop_lag = loop_lag
        self._lag_neutral = lag_neutral_s
        self.tracer = tracer  # None: no spans (the pass-through trace context still goes out)
        self.schedule = RetrySchedule(settings.retry)
        self.pool = InstancePool(settings.urls, settings.outlier)
        self.breaker = ServiceBreaker(settings.name, settings.breaker, on_breaker_transition)
        retry = settings.retry
        self.budget = RetryBudget(
            retry.budget_ratio, retry.budget_min_retries, retry.budget_window_s
        )
        self.latency = LatencyWindow(retry.min_attempt_s)
        self.hedging = HedgePolicy(settings.hedge, self.latency)
        self.in_flight = 0
        self._in_flight_peak = 0  # the most calls in flight since the last metrics sample
        # Per outcome of each attempt sent, retries and hedges: read by /metrics and /status.
        self.attempts: defaultdict[str, int] = defaultdict(int)
        self.retries = 0
        self.hedges: defaultdict[str, int] = defaultdict(int)
        self.hedges_skipped: defaultdict[str, int] = defaultdict(int)

    async def fetch(
        self,
        part: Endpoint,
        product_id: str,
        ctx: RequestContext,
        call: PartCall,
        *,
        etag: str | None = None,
    ) -> Reply:
        """GET one part for one product under the whole policy, recorded in `call`.
        `etag`: sent as If-None-Match (only then is a 304 an answer)."""
        if self.in_flight >= self.max_in_flight:
            reply = Reply.failed(Overloaded(self.name, f"{self.in_flight} calls in flight"))
            call.outcome = "overloaded"
            call.duration = ctx.elapsed() - call.started
            return reply
        self.in_flight += 1
        if self.in_flight > self._in_flight_peak:
            self._in_flight_peak = self.in_flight
        self.budget.record_first_attempt()
        self.hedging.record_call()
        path = f"{part.prefix}{product_id}"
        try:
            while True:
                reply, delay = await self._attempt(part, path, product_id, ctx, call, etag)
                if delay is None:
                    break
                self.retries += 1
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            call.outcome = "cancelled"
            raise
        except BaseException:
            call.outcome = "bad_response"  # a bug of ours: the fan-out logs it
            raise
        finally:
            self.in_flight -= 1
            call.duration = ctx.elapsed() - call.started
        call.outcome = "ok" if reply.error is None else reply.error.reason
        return reply

    def take_in_flight_peak(self) -> int:
        """The most calls in flight since the last call (bulkhead occupancy, sampled)."""
        peak, self._in_flight_peak = self._in_flight_peak, self.in_flight
        return peak

    def write_metrics(self, out: metrics.Writer) -> None:
        """This service's counts since start (bff.observability.metrics)."""
        name = self.name
        for outcome, n in list(self.attempts.items()):
            out.counter(metrics.ATTEMPTS, (name, outcome), n)
        out.counter(metrics.RETRIES, (name,), self.retries)
        for outcome, n in list(self.hedges.items()):
            out.counter(metrics.HEDGES, (name, outcome), n)
        for reason, n in list(self.hedges_skipped.items()):
            out.counter(metrics.HEDGES_SKIPPED, (name, reason), n)
        out.counter(metrics.BUDGET_EXHAUSTED, (name,), self.budget.exhausted)
        out.counter(metrics.EJECTIONS, (name,), self.pool.ejections)

    def loop_starved(self) -> bool:
        """Our own loop is running late: a timeout now may be ours, not the service's."""
        return self.loop_lag is not None and self.loop_lag.lag > self._lag_neutral

    # -- one attempt --------------------------------------------------------------------------

    async def _attempt(
        self,
        part: Endpoint,
        path: str,
        product_id: str,
        ctx: RequestContext,
        call: PartCall,
        etag: str | None,
    ) -> tuple[Reply, float | None]:
        """(the attempt's reply, the delay before the next attempt or None: the reply is the
        call's). Deadline and breaker first: no network call when either says no."""
        remaining = ctx.remaining()
        if remaining <= 0.001:
            error = call.error or DownstreamTimeout(self.name, "deadline reached")
            return Reply.failed(error), None
        try:
            permit = self.breaker.admit()
        except CircuitOpen as exc:
            # The breaker opened between our attempts: the attempt's own error stands.
            return Reply.failed(call.error or exc), None
        call.attempts += 1
        instance = self.pool.pick(call.last_instance)
        call.last_instance = instance
        allotted = remaining if remaining < self.attempt_timeout else self.attempt_timeout
        headers = self._headers(ctx, allotted, etag)
        span = self._span(ctx, instance, path, headers, call, hedge=False)
        hedge_delay = self.hedging.delay()
        try:
            if hedge_delay is None:
                reply, retryable = await self._leg(
                    part, path, product_id, instance, permit, headers, allotted, etag
                )
            else:
                (reply, retryable), outcome = await race(
                    self._leg(part, path, product_id, instance, permit, headers, allotted, etag),
                    hedge_delay,
                    lambda late_s: self.start_hedge(
                        part, path, product_id, ctx, call, instance, etag, late_s
                    ),
                )
                if outcome is not None:
                    call.hedge = outcome
                    self.hedges[outcome] += 1
                    if span is not None:
                        span.hedged(outcome)
        except BaseException as exc:
            cancelled = isinstance(exc, asyncio.CancelledError)
            self._attempted("cancelled" if cancelled else "error", span, exc)
            raise
        finally:
            if not permit.done:
                permit.release()  # neutral: a bad body, a cut budget, a cancellation
        failed = reply.error
        if failed is None:
            self._attempted("ok", span, reply)
            return reply, None
        call.error = error = failed
        delay = self.plan_retry(error, call.attempts, ctx) if retryable else None
        if span is not None and delay is not None:
            span.retry_scheduled(delay, call.attempts + 1)
        self._attempted(error.reason, span, reply)
        return reply, delay

    def _headers(self, ctx: RequestContext, allotted: float, etag: str | None) -> dict[str, str]:
        """The forwarded client headers, this attempt's budget (its time minus the margin),
        the validator, and the request's trace context (a span's, when one is made)."""
        headers = dict(ctx.headers)
        headers["X-Request-Timeout-Ms"] = str(max(1, int((allotted - self.margin) * 1000)))
        if etag is not None:
            headers["If-None-Match"] = etag
        trace = ctx.trace
        if trace is not None:
            headers["traceparent"] = trace.traceparent
            if trace.tracestate:
                headers["tracestate"] = trace.tracestate
        return headers

    def _span(
        self,
        ctx: RequestContext,
        instance: Instance,
        path: str,
        headers: dict[str, str],
        call: PartCall,
        *,
        hedge: bool,
    ) -> AttemptSpan | None:
        """The attempt's client span when tracing is on and this request is sampled (every
        standard sampler decides a trace's children like its root); it becomes the parent in
        `traceparent`."""
        trace = ctx.trace
        if self.tracer is None or trace is None or not trace.sampled:
            return None
        return AttemptSpan.start(
            self.tracer,
            self.name,
            instance,
            path,
            headers,
            call.attempts,
            self.breaker.state,
            hedge=hedge,
        )

    def _attempted(self, outcome: str, span: AttemptSpan | None, result: object) -> None:
        self.attempts[outcome] += 1
        if span is not None:
            span.finish(outcome, result)

    async def _leg(
        self,
        part: Endpoint,
        path: str,
        product_id: str,
        instance: Instance,
        permit: Permit,
        headers: dict[str, str],
        allotted: float,
        etag: str | None,
    ) -> tuple[Reply, bool]:
        """One request of the attempt (the first, or its hedge), its verdict reported to the
        breaker, the pool and the latency window."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        instance.in_flight += 1
        try:
            reply, health, retryable = await self._send(
                part, path, product_id, instance, headers, allotted, etag
            )
        finally:
            instance.in_flight -= 1
        if health == _SUCCESS:
            permit.success()
            instance.consecutive_failures = 0
            if reply.error is None:
                self.latency.record(loop.time() - started)
        elif health == _FAILURE:
            permit.failure()
            self.pool.record_failure(instance)
        return reply, retryable

    async def _send(
        self,
        part: Endpoint,
        path: str,
        product_id: str,
        instance: Instance,
        headers: dict[str, str],
        allotted: float,
        etag: str | None,
    ) -> tuple[Reply, int, bool]:
        """The GET under its timeout, body included: (reply, health, retryable)."""
        base = instance.base_url
        # A URL object, not a string: aiohttp would parse and re-quote the string on every call
        # (~5 us each). The path needs no quoting: ids are [A-Za-z0-9_-] only.
        url = base.with_path(base.raw_path.rstrip("/") + path, encoded=True)
        # An address found under a name (bff.resilience.discovery) is called as that name: its
        # Host header, and for TLS its SNI and certificate check.
        if (host := instance.host_header) is not None:
            headers["Host"] = host
        server_hostname = instance.host if url.scheme == "https" else None
        name = self.name
        try:
            async with asyncio.timeout(allotted):
                async with self.session.get(
                    url,
                    headers=headers,
                    allow_redirects=False,
                    server_hostname=server_hostname,
                ) as resp:
                    status = resp.status
                    if status == 200:
                        body = await self._read_capped(resp)
                        try:
                            value = part.decode(body, product_id)
                        except Exception as exc:
                            bad = mapped_error(name, exc)
                            if bad is None:
                                raise
                            return Reply.failed(bad, 200), _NEUTRAL, False
                        reply = Reply(200, value=value, body=body, headers=resp.headers)
                        return reply, _SUCCESS, False
                    # A small error body of a declared length is read to its end, so the
                    # connection can be reused; any other is not waited for (the status is
                    # the answer) and its connection closes. One `content.read(n)` would
                    # only take what had arrived so far.
                    if (n := resp.content_length) is not None and n <= _ERROR_BODY_CAP:
                        await resp.read()
                    wait = retry_after(resp.headers.get("Retry-After"))
                    return self._classify(status, resp.headers, wait, part, allotted, etag)
        except Exception as exc:
            error = mapped_error(name, exc, allotted)
            if error is None:
                raise
            if isinstance(error, BadResponse):
                return Reply.failed(error), _NEUTRAL, False
            if isinstance(error, DownstreamTimeout):
                return Reply.failed(error), self._blame(allotted), True
            return Reply.failed(error), _FAILURE, True

    def _classify(
        self,
        status: int,
        headers: Mapping[str, str],
        wait: float | None,
        part: Endpoint,
        allotted: float,
        etag: str | None,
    ) -> tuple[Reply, int, bool]:
        """An answer other than 200 (see the table in the module's docstring)."""
        name = self.name
        if status == 304:
            if etag is None:
                return (
                    Reply.failed(BadResponse(name, "304 to a request without a tag"), 304),
                    _NEUTRAL,
                    False,
                )
            return Reply(304, headers=headers), _SUCCESS, False
        if status == 404:
            if part.on_404 is not None:
                return Reply(404, value=part.on_404()), _SUCCESS, False
            return Reply.failed(part.not_found(name, "404"), 404), _SUCCESS, False
        if status < 500:
            return (
                Reply.failed(DownstreamUnavailable(name, f"status {status}"), status),
                _SUCCESS,
                False,
            )
        if status == 504:
            error: DownstreamError = DownstreamTimeout(
                name, "service answered 504", retry_after=wait
            )
            return Reply.failed(error, 504), self._blame(allotted), True
        error = DownstreamUnavailable(name, f"status {status}", retry_after=wait)
        return Reply.failed(error, status), _FAILURE, status in _RETRYABLE_STATUSES

    def _blame(self, allotted: float) -> int:
        """A timeout counts against the service only when the attempt had its full time and
        our own loop is not running late (asked when the attempt ends: lag builds up)."""
        if allotted >= self.attempt_timeout and not self.loop_starved():
            return _FAILURE
        return _NEUTRAL

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        cap = self.max_body_bytes
        length = resp.content_length
        if length is not None and length > cap:
            raise BadResponse(self.name, f"body of {length} bytes exceeds the {cap}-byte cap")
        if length is not None and "Content-Encoding" not in resp.headers:
            return await resp.read()
        # Unknown or compressed length: count the decoded bytes as they arrive.
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > cap:
                raise BadResponse(self.name, f"body exceeds the {cap}-byte cap")
            chunks.append(chunk)
        return b"".join(chunks)

    def plan_retry(
        self, error: DownstreamError, attempts: int, ctx: RequestContext
    ) -> float | None:
        """The delay before the next attempt, or None when there is none (`error` is final).

        A retry needs attempts left, a breaker that is not open, a deadline that still holds
        the delay plus the service's recent p90 latency, and a token from the retry budget
        (spent here, last, so that a retry refused for another reason costs none)."""
        if attempts >= self.schedule.attempts or self.breaker.state == "open":
            return None
        delay = self.schedule.get_timeout(attempts)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        if ctx.remaining() - delay < self.latency.floor() + self.margin:
            return None
        if not self.budget.try_spend():
            return None
        return delay

    # -- hedging ------------------------------------------------------------------------------

    def start_hedge(
        self,
        part: Endpoint,
        path: str,
        product_id: str,
        ctx: RequestContext,
        call: PartCall,
        first: Instance,
        etag: str | None,
        late_s: float,
    ) -> asyncio.Task[Leg] | None:
        """Start the hedge of the request sent to `first` now, or None when it may not go (see
        HedgePolicy; the breaker last: a hedge needs a permit of its own). `late_s`: how late
        the hedge timer fired."""
        loop_late = late_s > HEDGE_LATE_S or self.loop_starved()
        refused = self.hedging.admit(ctx.remaining(), self.margin, loop_late, self.breaker.counts)
        if refused is None:
            try:
                permit = self.breaker.admit()
            except CircuitOpen:
                refused = "breaker"
        if refused is not None:
            self.hedges_skipped[refused] += 1
            return None
        try:
            instance = self.pool.pick(first)
            remaining = ctx.remaining()
            allotted = remaining if remaining < self.attempt_timeout else self.attempt_timeout
            headers = self._headers(ctx, allotted, etag)
            span = self._span(ctx, instance, path, headers, call, hedge=True)
            leg = functools.partial(
                self._leg, part, path, product_id, instance, permit, headers, allotted, etag
            )
            task = asyncio.get_running_loop().create_task(self._hedge_leg(leg, span))
        except BaseException:
            permit.release()  # a half-open breaker must not wait for a probe that never went
            raise

        def settle(task: asyncio.Task[tuple[Reply, bool]]) -> None:
            # Also when the task was cancelled before it ever ran (the fan-out answered at its
            # deadline just then): no permit may stay taken, no span open.
            permit.release()
            if task.cancelled():
                self._attempted("cancelled", span, None)

        task.add_done_callback(settle)
        return task

    async def _hedge_leg(self, leg: Callable[[], Awaitable[Leg]], span: AttemptSpan | None) -> Leg:
        """A hedge under its own span and attempt count (a cancellation is recorded by the
        task's done callback)."""
        try:
            reply, retryable = await leg()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._attempted("error", span, exc)
            raise
        self._attempted("ok" if reply.error is None else reply.error.reason, span, reply)
        return reply, retryable


def _good(leg: Leg) -> bool:
    """An answer a retry would not change: a value, or a final error (404...)."""
    return leg[0].error is None or not leg[1]


def _good_task(task: asyncio.Task[Leg]) -> bool:
    """A finished hedge whose answer may be used (one that raised never is)."""
    return not task.cancelled() and task.exception() is None and _good(task.result())


StartHedge = Callable[[float], "asyncio.Task[Leg] | None"]


async def race(
    first: Awaitable[Leg], delay: float, start_hedge: StartHedge
) -> tuple[Leg, str | None]:
    """A hedged attempt: the first GOOD answer of two wins, the other is cancelled.

        first request               runs in the caller's own task (no task of its own: this
        │                           runs on every call of a service that hedges)
        ├─ timer at `delay`         start_hedge(how late the timer fired): None means no
        │                           hedge (budget, deadline, breaker...) and the first request
        │                           goes on alone
        └─ hedge task               whichever answers first with a final answer wins; a failed
                                    leg (timeout, 5xx, reset) never wins while the other may
                                    still succeed; when both fail, the first request's error
                                    stands

    Returns the answer to use and what became of the hedge (None: none was sent; "won",
    "lost", "failed"). When the hedge wins, the caller's task is cancelled out of the first
    request the way `asyncio.timeout` does it (a cancel it takes back with `uncancel()`), so
    the first request has let go of its connection before we return. A hedge that loses is
    cancelled and awaited, also when the caller itself is cancelled (the fan-out answered at
    its deadline)."""
    state = _Race(delay, start_hedge)
    try:
        leg = await first
    except BaseException as exc:
        leg = await state.first_failed(exc)
    else:
        if state.hedge is not None or state.hedge_won:
            leg = await state.first_answered(leg)
        else:
            state.stop()
    return leg, state.outcome


class _Race:
    """What the hedge timer and the hedge's done callback share with the caller's task."""

    __slots__ = (
        "before",
        "due",
        "first_running",
        "hedge",
        "hedge_won",
        "outcome",
        "start_hedge",
        "task",
        "timer",
    )

    def __init__(self, delay: float, start_hedge: StartHedge) -> None:
        task = asyncio.current_task()
        assert task is not None, "a race runs in a task"
        self.task = task
        # Cancels the caller already had (taken or not) are not ours: compared with this count.
        self.before = task.cancelling()
        self.start_hedge = start_hedge
        self.hedge: asyncio.Task[Leg] | None = None
        self.first_running = True
        self.hedge_won = False  # we cancelled the caller's task out of the first request
        self.outcome: str | None = None  # what became of the hedge: won, lost, failed
        self.due = time.perf_counter() + delay
        self.timer = asyncio.get_running_loop().call_later(delay, self.fire)

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

    def stop(self) -> None:
        """The first request is over: no hedge may start from now on."""
        self.first_running = False
        self.timer.cancel()

    async def first_failed(self, exc: BaseException) -> Leg:
        """The first request raised. Our cancel (the hedge won) comes out as CancelledError,
        or as whatever the first request turned it into on its way out; either way it is
        taken back and the hedge's answer is used. A cancel of the caller by somebody else in
        the meantime still goes through, as a cancel; anything else is raised again."""
        self.stop()
        try:
            if not self.hedge_won or self.hedge is None:
                raise exc
            if self.task.uncancel() > self.before:
                raise asyncio.CancelledError from None
            self.outcome = "won"
            return self.hedge.result()
        finally:
            await _cancel_and_wait(self.hedge)

    async def first_answered(self, leg: Leg) -> Leg:
        """The first request answered while a hedge was out: which answer to use."""
        self.stop()
        try:
            # The first request swallowed our cancel and answered anyway (one CancelledError
            # is delivered for any number of cancels: somebody else's may be swallowed too).
            if self.hedge_won and self.task.uncancel() > self.before:
                raise asyncio.CancelledError
            hedge = self.hedge
            if hedge is None:
                return leg
            if not _good(leg) and not hedge.done():
                await asyncio.wait([hedge])  # a failed first request waits for the hedge
            if hedge.done():
                if _good_task(hedge) and not _good(leg):
                    self.outcome = "won"
                    return hedge.result()
                self.outcome = "failed" if not _good_task(hedge) else "lost"
                return leg
            self.outcome = "lost"
            return leg
        finally:
            await _cancel_and_wait(self.hedge)


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
