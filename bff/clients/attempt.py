"""One downstream call's attempts: send, classify, plan a retry.

    attempt()        observed: one client span and attempt count per attempt
    └─ _attempt()    deadline and breaker first (no network call when either says no), then
       ├─ leg()         an instance, the headers, the GET under its timeout -> a Verdict;
       │                its health -> breaker permit, outlier ejection, latency (_report)
       ├─ start_hedge() no answer after the service's p95: maybe a second leg to another
       │                instance, with its own permit and span (bff.clients.hedge_leg;
       │                bff.clients.hedging races them)
       └─ plan_retry()  a delay, or None: then the error is final

The breaker permit is released in a `finally`, whatever happens: a permit that is never
reported would leave a half-open breaker waiting for its probe for good.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp

from bff.clients.classify import Verdict, classify_answer, classify_error
from bff.clients.hedge_leg import start_hedge
from bff.clients.hedging import Leg, race
from bff.clients.retry import RetryableAttempt
from bff.clients.transport import Answer, Endpoint, send
from bff.deadline import Deadline
from bff.errors import CircuitOpen, DownstreamError, DownstreamTimeout
from bff.observability import metrics
from bff.observability.downstream import AttemptProbe
from bff.resilience.backoff import backoff_delay
from bff.resilience.breaker import Permit
from bff.resilience.pool import Instance

if TYPE_CHECKING:
    from bff.clients.base import DownstreamClient
    from bff.context import PartCall, RequestContext


class Call:
    """One call (one part of one request): its attempts, and the value the last one got."""

    __slots__ = ("client", "ctx", "endpoint", "etag", "product_id", "raw", "state", "value")

    def __init__(
        self,
        client: DownstreamClient,
        ctx: RequestContext,
        state: PartCall,
        endpoint: Endpoint,
        product_id: str,
        *,
        raw: bool = False,
        etag: str | None = None,
    ) -> None:
        self.client = client
        self.ctx = ctx
        self.state = state
        self.endpoint = endpoint
        self.product_id = product_id
        # raw: the value is the answer itself (`Fetched`: status, headers, body), for the part
        # cache; `etag`: sent as If-None-Match, and only then is a 304 an answer.
        self.raw = raw
        self.etag = etag
        self.value: Any = None

    async def attempt(self) -> aiohttp.ClientResponse:
        """One attempt, observed: its client span, outcome and retry (bff.observability)."""
        c = self.client
        probe = AttemptProbe(c.tracer, c.name, self.endpoint, self.state)
        try:
            resp = await self._attempt(probe)
        except RetryableAttempt as exc:
            probe.finish(exc.error, retry_delay=exc.delay)
            raise
        except BaseException as exc:
            probe.finish(exc)
            raise
        probe.finish(None)
        return resp

    async def _attempt(self, probe: AttemptProbe) -> aiohttp.ClientResponse:
        c, state = self.client, self.state
        state.attempts += 1
        permit = self._admit()
        try:
            instance = c.pool.pick(state.last_instance)
            state.last_instance = instance
            allotted, headers = self.allotment()
            path = self.endpoint.path(self.product_id)
            probe.sending(instance, path, headers, c.breaker.state)
            leg = self.leg(instance, permit, path, headers, allotted)
            delay = c.hedging.delay()
            if delay is None:
                verdict, answer = await leg
            else:
                (verdict, answer), outcome = await race(
                    leg, delay, lambda late: start_hedge(self, instance, path, late)
                )
                if outcome is not None:
                    probe.hedged(outcome)
                    state.hedge = outcome
                    metrics.hedges(c.name, outcome).inc()
            probe.status = answer.status if answer is not None else None
        finally:
            permit.release()  # a no-op once reported; neutral for everything else
        if verdict.error is None:
            assert answer is not None  # only an answer can carry a value
            self.value = verdict.value
            return answer.response
        state.error = verdict.error
        if verdict.retryable and (delay := self.plan_retry(verdict.error)) is not None:
            raise RetryableAttempt(verdict.error, delay)
        raise verdict.error

    def allotment(self) -> tuple[float, dict[str, str]]:
        """This attempt's time (min(per-attempt timeout, what is left of the deadline)) and
        its headers, X-Request-Timeout-Ms saying that time minus the margin."""
        c = self.client
        allotted = min(c.attempt_timeout, self.deadline.remaining())
        headers = dict(self.ctx.headers)
        headers["X-Request-Timeout-Ms"] = str(max(1, int((allotted - c.margin) * 1000)))
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
        return allotted, headers

    async def leg(
        self,
        instance: Instance,
        permit: Permit,
        path: str,
        headers: dict[str, str],
        allotted: float,
    ) -> Leg:
        """One request of the attempt (the first, or its hedge), reported to the breaker,
        the pool and the latency window."""
        try:
            started = asyncio.get_running_loop().time()
            verdict, answer = await self._send(instance, path, headers, allotted)
            self._report(verdict, permit, instance, started)
            return verdict, answer
        finally:
            permit.release()

    @property
    def deadline(self) -> Deadline:
        deadline = self.ctx.deadline
        assert deadline is not None, "the handler sets the deadline before any call"
        return deadline

    def _admit(self) -> Permit:
        """The breaker's permit, or the reason there is no attempt (no span, no count)."""
        c, state = self.client, self.state
        if self.deadline.remaining() <= 0.001:
            raise state.error or DownstreamTimeout(c.name, "deadline reached")
        try:
            return c.breaker.admit()
        except CircuitOpen:
            if state.error is not None:  # the breaker opened between our attempts
                raise state.error from None
            raise

    async def _send(
        self,
        instance: Instance,
        path: str,
        headers: dict[str, str],
        allotted: float,
    ) -> tuple[Verdict, Answer | None]:
        c = self.client
        instance.in_flight += 1
        try:
            answer = await send(
                c.session,
                instance,
                path,
                headers,
                service=c.name,
                timeout_s=allotted,
                max_body_bytes=c.settings.max_body_bytes,
            )
        except DownstreamError as exc:
            return classify_error(exc, timeouts_count=self._timeouts_count(allotted)), None
        finally:
            instance.in_flight -= 1
        timeouts_count = self._timeouts_count(allotted)
        verdict = classify_answer(
            answer,
            self.endpoint,
            self.product_id,
            c.name,
            timeouts_count=timeouts_count,
            raw=self.raw,
            etag_sent=self.etag is not None,
        )
        return verdict, answer

    def _timeouts_count(self, allotted: float) -> bool:
        """A timeout counts against the service only when the attempt had its full time and our
        own loop is not running late (asked when the attempt ends: lag builds up meanwhile)."""
        c = self.client
        return allotted >= c.attempt_timeout and not c.loop_starved()

    def _report(self, verdict: Verdict, permit: Permit, instance: Instance, started: float) -> None:
        c = self.client
        if verdict.health == "success":
            permit.success()
            c.pool.record_success(instance)
            if verdict.error is None:
                c.latency.record(asyncio.get_running_loop().time() - started)
        elif verdict.health == "failure":
            permit.failure()
            c.pool.record_failure(instance)
        # "neutral": neither; the caller's `finally` releases the permit.

    def plan_retry(self, error: DownstreamError) -> float | None:
        """The delay before the next attempt, or None when there is none (and `error` is final).

        A retry needs attempts left, a breaker that is not open, a deadline that still holds
        the delay plus the service's recent p90 latency, and a token from the retry budget
        (spent here, last, so that a retry refused for another reason costs none).
        """
        c, retry = self.client, self.client.settings.retry
        if self.state.attempts >= retry.max_attempts or c.breaker.state == "open":
            return None
        delay = backoff_delay(self.state.attempts, retry.backoff_base_s, retry.backoff_max_s)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        if self.deadline.remaining() - delay < c.latency.floor() + c.margin:
            return None
        if not c.budget.try_spend():
            return None
        return delay
