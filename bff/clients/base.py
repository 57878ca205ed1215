"""The shared client: every downstream call goes through this policy, in this order.

    bulkhead            per-service cap on calls in flight; full -> Overloaded, no queueing
    └─ retry loop       aiohttp-retry drives attempts and backoff (DeadlineBoundRetry)
       └─ deadline      no time left -> DownstreamTimeout, no attempt
          └─ breaker    admit() per attempt; open -> CircuitOpen, no network call
             └─ instance    power-of-two-choices; a retry avoids the instance just tried
                └─ attempt  timeout = min(per-attempt policy, what is left of the deadline);
                            X-Request-Timeout-Ms = that minus a margin; body read under a cap
                            and decoded into typed structs; outcome -> breaker, pool, latency

A retry is planned only when the error is retryable (connection error, attempt timeout,
502/503/504), attempts remain, the retry budget has a token, the breaker is not open, and the
deadline still holds the backoff plus the service's recently observed p90 latency.

What counts against a service (breaker and outlier ejection): connection errors, 5xx,
bad_response, and timeouts *when the attempt had its full per-attempt timeout* and this
worker's event loop was not itself running late (`bff.resilience.loop_lag`). A 4xx is an
answer from a live service and counts as a success (as pybreaker's excluded errors do). A
timeout or a 504 caused by a short client budget, and a cancellation by the BFF itself, say
nothing about the service's health and are neutral (neither failure nor success): otherwise
any client could trip our breakers by sending `X-Request-Timeout-Ms: 1`.

Library exceptions stop here: callers only ever see `bff.errors.DownstreamError`s.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any, TypeVar, cast

import aiohttp
import msgspec
from aiohttp_retry import RequestParams, RetryClient
from opentelemetry.trace import Tracer

from bff.clients.call import CallContext, CallState
from bff.clients.endpoints import Endpoint
from bff.errors import (
    BadResponse,
    CircuitOpen,
    DownstreamError,
    DownstreamTimeout,
    DownstreamUnavailable,
    Overloaded,
)
from bff.observability.downstream import AttemptProbe
from bff.resilience.backoff import PLANNED_DELAY, DeadlineBoundRetry, backoff_delay
from bff.resilience.breaker import ServiceBreaker, TransitionHook
from bff.resilience.budget import RetryBudget
from bff.resilience.latency import LatencyWindow
from bff.resilience.loop_lag import LoopLag
from bff.resilience.pool import Instance, InstancePool
from bff.settings import DownstreamSettings

T = TypeVar("T")

_RETRYABLE_STATUSES = frozenset({502, 503, 504})
_ERROR_BODY_CAP = 64 * 1024


class RetryableAttempt(Exception):
    """Raised by an attempt when a retry has been planned; carries the attempt's error."""

    def __init__(self, error: DownstreamError) -> None:
        super().__init__(str(error))
        self.error = error


class _QuietLogger:
    """aiohttp-retry logs every attempt at debug level; our own logs say more, once."""

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        pass

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        pass

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        pass


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
        self._session = session
        self._margin = propagation_margin_s
        self._attempt_timeout = settings.attempt_timeout_ms / 1000
        self.loop_lag = loop_lag
        self._lag_neutral = lag_neutral_s
        self._tracer = tracer  # None: no spans (the pass-through trace context still goes out)
        self.pool = InstancePool(settings.urls, settings.outlier)
        self.breaker = ServiceBreaker(settings.name, settings.breaker, on_breaker_transition)
        self.budget = RetryBudget(
            settings.retry.budget_ratio,
            settings.retry.budget_min_retries,
            settings.retry.budget_window_s,
        )
        self.latency = LatencyWindow(settings.retry.min_attempt_ms / 1000)
        self.in_flight = 0
        # aiohttp-retry calls `.request(...)` on what it takes for a session: we hand it our
        # attempt function so the whole per-attempt policy runs inside its retry loop.
        self._retry = RetryClient(
            client_session=cast(aiohttp.ClientSession, _AttemptAdapter(self)),
            logger=_QuietLogger(),
        )
        self._retry_options = DeadlineBoundRetry(settings.retry.max_attempts, RetryableAttempt)

    async def fetch(self, endpoint: Endpoint[T], product_id: str, ctx: CallContext) -> T:
        """GET one endpoint for one product under the whole policy."""
        state = ctx.new_call(self.name)
        try:
            if self.in_flight >= self.settings.max_in_flight:
                raise Overloaded(self.name, f"{self.in_flight} calls in flight")
            self.in_flight += 1
            try:
                self.budget.record_first_attempt()
                trace_ctx = {"ctx": ctx, "state": state, "endpoint": endpoint, "id": product_id}
                params = RequestParams(
                    "GET", endpoint.path(product_id), trace_request_ctx=trace_ctx
                )
                await self._retry.requests([params], retry_options=self._retry_options)
            except RetryableAttempt as exc:  # only if aiohttp-retry ran out of attempts itself
                raise exc.error from None
            finally:
                self.in_flight -= 1
        except DownstreamError as exc:
            state.outcome = exc.reason
            raise
        except asyncio.CancelledError:
            state.outcome = "cancelled"
            raise
        finally:
            state.duration = ctx.deadline.elapsed() - state.started
        state.outcome = "ok"
        return cast(T, state.value)

    # -- one attempt -------------------------------------------------------------------------

    async def attempt(
        self,
        path: str,
        ctx: CallContext,
        state: CallState,
        endpoint: Endpoint[Any],
        product_id: str,
    ) -> aiohttp.ClientResponse:
        """One attempt, observed: its client span, outcome and retry (bff.observability)."""
        probe = AttemptProbe(self._tracer, self.name, endpoint, state)
        try:
            resp = await self._attempt(path, ctx, state, endpoint, product_id, probe)
        except RetryableAttempt as exc:
            probe.finish(exc.error, retry=True)
            raise
        except BaseException as exc:
            probe.finish(exc)
            raise
        probe.finish(None)
        return resp

    async def _attempt(
        self,
        path: str,
        ctx: CallContext,
        state: CallState,
        endpoint: Endpoint[Any],
        product_id: str,
        probe: AttemptProbe,
    ) -> aiohttp.ClientResponse:
        state.attempts += 1
        remaining = ctx.deadline.remaining()
        if remaining <= 0.001:
            raise state.error or DownstreamTimeout(self.name, "deadline reached")
        try:
            permit = self.breaker.admit()
        except CircuitOpen:
            if state.error is not None:  # the breaker opened between our attempts
                raise state.error from None
            raise
        instance = self.pool.pick(state.last_instance)
        state.last_instance = instance
        allotted = min(self._attempt_timeout, remaining)
        full_budget = allotted >= self._attempt_timeout
        headers = dict(ctx.headers)
        headers["X-Request-Timeout-Ms"] = str(max(1, int((allotted - self._margin) * 1000)))
        probe.sending(instance, path, headers, self.breaker.state)
        loop = asyncio.get_running_loop()
        started = loop.time()
        instance.in_flight += 1
        try:
            async with asyncio.timeout_at(started + allotted):
                resp, body = await self._fetch(instance, path, headers)
        except asyncio.CancelledError:
            permit.release()
            raise
        except TimeoutError:
            error: DownstreamError = DownstreamTimeout(
                self.name, f"no answer in {allotted * 1000:.0f} ms"
            )
            self._failed(permit, instance, counts=full_budget and not self._loop_starved())
            raise self._maybe_retry(error, ctx, state) from None
        except DownstreamError as bad:  # a bad_response from _fetch
            self._failed(permit, instance, counts=True)
            raise bad from None
        except (aiohttp.ClientError, OSError) as exc:
            error = DownstreamUnavailable(self.name, _describe(exc))
            self._failed(permit, instance, counts=True)
            raise self._maybe_retry(error, ctx, state) from None
        finally:
            instance.in_flight -= 1

        status = probe.status = resp.status
        if status == 200:
            try:
                state.value = endpoint.decode(body, product_id)
            except msgspec.DecodeError as exc:
                self._failed(permit, instance, counts=True)
                raise BadResponse(self.name, str(exc)) from None
            permit.success()
            self.pool.record_success(instance)
            self.latency.record(loop.time() - started)
            return resp
        if status < 500:
            # A 4xx says the service is alive and answering: neutral-to-good for its health.
            permit.success()
            self.pool.record_success(instance)
            if status == 404 and endpoint.on_404 is not None:
                state.value = endpoint.on_404()
                return resp
            if status == 404:
                raise endpoint.not_found(self.name, "404")
            raise DownstreamUnavailable(self.name, f"status {status}")
        retry_after = _retry_after(resp.headers.get("Retry-After"))
        if status == 504:
            error = DownstreamTimeout(self.name, "service answered 504", retry_after=retry_after)
            self._failed(permit, instance, counts=full_budget and not self._loop_starved())
        else:
            error = DownstreamUnavailable(self.name, f"status {status}", retry_after=retry_after)
            self._failed(permit, instance, counts=True)
        if status in _RETRYABLE_STATUSES:
            raise self._maybe_retry(error, ctx, state)
        raise error

    async def _fetch(
        self, instance: Instance, path: str, headers: dict[str, str]
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        base = instance.base_url
        # A URL object, not a string: aiohttp would parse and re-quote the string on every
        # call (~5 us each, issue 5). The path needs no quoting: ids are [A-Za-z0-9_-] only.
        url = base.with_path(base.raw_path.rstrip("/") + path, encoded=True)
        async with self._session.get(url, headers=headers, allow_redirects=False) as resp:
            if resp.status == 200:
                return resp, await _read_capped(resp, self.settings.max_body_bytes, self.name)
            # Drain small error bodies so the connection can be reused.
            if (resp.content_length or 0) <= _ERROR_BODY_CAP:
                await resp.content.read(_ERROR_BODY_CAP)
            return resp, b""

    def _failed(self, permit: Any, instance: Instance, *, counts: bool) -> None:
        if counts:
            permit.failure()
            self.pool.record_failure(instance)
        else:
            permit.release()

    def _loop_starved(self) -> bool:
        """Our own loop is running late: a timeout now may be ours, not the service's."""
        return self.loop_lag is not None and self.loop_lag.lag > self._lag_neutral

    def _maybe_retry(self, error: DownstreamError, ctx: CallContext, state: CallState) -> Exception:
        state.error = error
        retry = self.settings.retry
        if state.attempts >= retry.max_attempts or self.breaker.state == "open":
            return error
        delay = backoff_delay(
            state.attempts, retry.backoff_base_ms / 1000, retry.backoff_max_ms / 1000
        )
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        if ctx.deadline.remaining() - delay < self.latency.floor() + self._margin:
            return error
        if not self.budget.try_spend():
            return error
        PLANNED_DELAY.set(delay)  # read by aiohttp-retry's sleep and by the attempt's span
        return RetryableAttempt(error)


class _AttemptAdapter:
    """Looks enough like a ClientSession for aiohttp-retry: `.request()` runs one attempt."""

    __slots__ = ("_client",)

    def __init__(self, client: DownstreamClient) -> None:
        self._client = client

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Any = None,
        trace_request_ctx: dict[str, Any],
        **_: Any,
    ) -> aiohttp.ClientResponse:
        c = trace_request_ctx
        return await self._client.attempt(url, c["ctx"], c["state"], c["endpoint"], c["id"])

    async def close(self) -> None:  # RetryClient.close() closes "its" session; ours is shared.
        pass


async def _read_capped(resp: aiohttp.ClientResponse, cap: int, service: str) -> bytes:
    length = resp.content_length
    if length is not None and length > cap:
        raise BadResponse(service, f"body of {length} bytes exceeds the {cap}-byte cap")
    if length is not None and "Content-Encoding" not in resp.headers:
        return await resp.read()
    # Unknown or compressed length: count the decoded bytes as they arrive.
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > cap:
            raise BadResponse(service, f"body exceeds the {cap}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
