"""The shared client: every downstream call goes through this policy, in this order.

    bulkhead            per-service cap on calls in flight; full -> Overloaded, no queueing
    └─ retry loop       aiohttp-retry counts attempts and sleeps (bff.clients.retry)
       └─ deadline      no time left -> DownstreamTimeout, no attempt
          └─ breaker    admit() per attempt; open -> CircuitOpen, no network call
             └─ instance    power-of-two-choices; a retry avoids the instance just tried
                └─ attempt  timeout = min(per-attempt policy, what is left of the deadline);
                            no answer after the service's p95: one hedge to another instance
                            (own breaker permit, hedge budget; bff.resilience.hedge);
                            X-Request-Timeout-Ms = that minus a margin; body read under a cap
                            and decoded into typed structs; outcome -> breaker, pool, latency

The attempt is in three pieces, one module each: send (`transport`, every foreign exception
mapped by `mapping.map_exceptions`), classify the answer (`classify`: a value or an error, and
what it says about the service's health), plan a retry (`attempt.Call.plan_retry`: a delay or
none). A retry is planned only when the error is retryable (connection error, attempt timeout,
502/503/504), attempts remain, the retry budget has a token, the breaker is not open, and the
deadline still holds the backoff plus the service's recently observed p90 latency.

What counts against a service (breaker and outlier ejection): connection errors, 5xx, and
timeouts *when the attempt had its full per-attempt timeout* and this worker's event loop was
not itself running late (`bff.resilience.loop_lag`). A 4xx is an answer from a live service
and counts as a success. A bad body (one id's problem), a timeout or a 504 caused by a short
client budget, and a cancellation by the BFF itself say nothing about the service's health and
are neutral: otherwise one poison id, or any client sending `X-Request-Timeout-Ms: 1`, could
trip our breakers for everyone.

Library exceptions stop here: callers only ever see `bff.errors.DownstreamError`s.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
from opentelemetry.trace import Tracer

from bff.clients.attempt import Call
from bff.clients.retry import run_attempts
from bff.clients.transport import Endpoint
from bff.errors import DownstreamError, Overloaded
from bff.observability import metrics
from bff.resilience.breaker import ServiceBreaker, TransitionHook
from bff.resilience.budget import RetryBudget
from bff.resilience.hedge import HedgePolicy
from bff.resilience.latency import LatencyWindow
from bff.resilience.loop_lag import LoopLag
from bff.resilience.pool import InstancePool
from bff.settings import DownstreamSettings

if TYPE_CHECKING:
    from bff.context import PartCall, RequestContext


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
        self.loop_lag = loop_lag
        self._lag_neutral = lag_neutral_s
        self.tracer = tracer  # None: no spans (the pass-through trace context still goes out)
        self.pool = InstancePool(settings.urls, settings.outlier, service=settings.name)
        self.breaker = ServiceBreaker(settings.name, settings.breaker, on_breaker_transition)
        self.budget = RetryBudget(
            settings.retry.budget_ratio,
            settings.retry.budget_min_retries,
            settings.retry.budget_window_s,
            on_exhausted=metrics.budget_exhausted(settings.name).inc,
        )
        self.latency = LatencyWindow(settings.retry.min_attempt_s)
        self.hedging = HedgePolicy(settings.hedge, self.latency)
        self.in_flight = 0
        self._in_flight_peak = 0  # the most calls in flight since the last metrics sample

    async def fetch(self, part: Endpoint, product_id: str, ctx: RequestContext) -> Any:
        """GET one part for one product under the whole policy: its typed value."""
        return await self.call(part, product_id, ctx, ctx.new_call(self.name))

    async def call(
        self,
        part: Endpoint,
        product_id: str,
        ctx: RequestContext,
        state: PartCall,
        *,
        raw: bool = False,
        etag: str | None = None,
    ) -> Any:
        """`fetch`, recorded in `state`. `raw`: a 200 or 304 comes back as `Fetched` (status,
        headers, body) for the part cache to judge; `etag`: sent as If-None-Match."""
        call = Call(self, ctx, state, part, product_id, raw=raw, etag=etag)
        try:
            if self.in_flight >= self.settings.max_in_flight:
                raise Overloaded(self.name, f"{self.in_flight} calls in flight")
            self.in_flight += 1
            self._in_flight_peak = max(self._in_flight_peak, self.in_flight)
            try:
                self.budget.record_first_attempt()
                self.hedging.record_call()
                await run_attempts(call.attempt, self.settings.retry.max_attempts)
            finally:
                self.in_flight -= 1
        except DownstreamError as exc:
            state.outcome = exc.reason
            raise
        except asyncio.CancelledError:
            state.outcome = "cancelled"
            raise
        except Exception:
            # A bug of ours, not the service's: the fan-out logs it and answers for the part.
            state.outcome = "bad_response"
            raise
        finally:
            state.duration = ctx.elapsed() - state.started
        state.outcome = "ok"
        return call.value

    def take_in_flight_peak(self) -> int:
        """The most calls in flight since the last call (bulkhead occupancy, sampled)."""
        peak, self._in_flight_peak = self._in_flight_peak, self.in_flight
        return peak

    def loop_starved(self) -> bool:
        """Our own loop is running late: a timeout now may be ours, not the service's."""
        return self.loop_lag is not None and self.loop_lag.lag > self._lag_neutral
