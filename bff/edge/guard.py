"""`EdgeGuard`: the protections of `bff.edge`, composed into one call around the handler.

Built once per app from `EdgeSettings`; every protection that is off is `None` and costs a
single check.

Admission, before any work (no token check, no rate-limit lookup, no downstream call):
a request that already spent its whole deadline queued in this worker (bff.edge.arrival) is
refused, and so is one over the adaptive concurrency limit (bff.resilience.adaptive): 503 +
`Retry-After` at once, never a queue. The adaptive limit sits under `max_in_flight`, which
stays the hard ceiling: latency is a good signal of queueing but not of every cost (a
downstream failing fast looks "fast" and would let the limit climb without bound), and an
operator needs one figure that bounds memory and sockets whatever the gradient learns. Its
latency sample is the request's whole time in the worker, queueing included, and only for
requests that went downstream: a 400 or 401 is fast for reasons that say nothing of load.

It raises the `EdgeRejection`s of `bff.errors`; the edge middleware turns them into problems
like any other error, then calls `decorate` on whatever response goes out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from bff import keys
from bff.edge.auth import JwtVerifier
from bff.edge.client_ip import ClientIp
from bff.edge.cors import Cors
from bff.edge.headers import stamp
from bff.edge.ratelimit import RateLimiter
from bff.errors import BodyTooLarge, ServiceOverloaded, Unauthorized
from bff.lifecycle import Lifecycle
from bff.observability import metrics
from bff.resilience.adaptive import AdaptiveLimit, AdaptiveLimitPolicy
from bff.settings import EdgeSettings

# The API's description: static, cheap, and needed before a client has a token. Operators'
# endpoints are not on this listener at all (bff.admin).
EXEMPT_PATHS = frozenset({"/openapi.json"})
# A request refused for overload should be answered within a few ms; that holds only while
# the worker's loop reaches a new request within that time, so admitted requests waiting
# longer than this on average mean the limit is too high. 5 ms shed requests at 64
# connections on 2 workers of a busy shared 2-core machine (the loop's own jitter there);
# 10 ms did not.
QUEUE_TARGET_S = 0.010


class EdgeGuard:
    __slots__ = (
        "_auth",
        "_client_ip",
        "_concurrency",
        "_cors",
        "_deadline_s",
        "_lifecycle",
        "_limiter",
        "_published",
    )

    def __init__(self, settings: EdgeSettings, lifecycle: Lifecycle, *, deadline_s: float) -> None:
        self._lifecycle = lifecycle
        self._cors = Cors(settings.cors) if settings.cors.origins else None
        self._auth = JwtVerifier(settings.auth) if settings.auth.enabled else None
        self._limiter = RateLimiter(settings.rate_limit) if settings.rate_limit.enabled else None
        self._client_ip = ClientIp(settings.trusted_proxies)
        self._deadline_s = deadline_s
        self._concurrency = AdaptiveLimit(_limit_policy(settings))
        self._published = int(self._concurrency.limit)
        metrics.CONCURRENCY_LIMIT.set(self._published)

    @property
    def in_flight(self) -> int:
        return self._concurrency.in_flight

    @property
    def concurrency(self) -> AdaptiveLimit:
        """The admission limit (read it, don't drive it: the guard acquires and releases)."""
        return self._concurrency

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and self._cors is not None and "Origin" in request.headers:
            return self._cors.preflight(request)
        if request.path in EXEMPT_PATHS:
            return await handler(request)
        if request.body_exists:
            # Every route is GET or HEAD, where a body has no meaning: refused, whatever its
            # size, before anything reads it (aiohttp's own read cap is edge.max_body_bytes).
            raise BodyTooLarge("a GET or HEAD request carries no body")
        ctx = request[keys.CONTEXT]
        queued = ctx.elapsed()
        if queued >= self._deadline_s:
            metrics.edge_rejections("queued").inc()
            raise ServiceOverloaded("the request's deadline passed while it was queued")
        limit = self._concurrency
        if not limit.acquire():
            # No queue: waiting would only spend the deadline of a request we cannot serve.
            metrics.edge_rejections("shed").inc()
            raise ServiceOverloaded("this instance is at its concurrency limit")
        rtt: float | None = None
        try:
            await self._admit(request)
            response = await handler(request)
            if ctx.deadline is not None:  # the API's handler ran: a latency to learn from
                rtt = ctx.elapsed()
            return response
        finally:
            limit.release(rtt, queued)
            if int(limit.limit) != self._published:
                self._published = int(limit.limit)
                metrics.CONCURRENCY_LIMIT.set(self._published)

    async def _admit(self, request: web.Request) -> None:
        subject = None
        # No route (404) or no such method (405): there is nothing to protect, and a token
        # would not change the answer; such requests still count against the IP's limit.
        if self._auth is not None and request.match_info.http_exception is None:
            try:
                subject = await self._auth.subject(request.headers.get("Authorization"))
            except Unauthorized:
                # Bad tokens still spend the caller's IP allowance: no free token guessing.
                if self._limiter is not None:
                    ip_key = f"ip:{self._client_ip(request)}"
                    await self._limiter.check(ip_key, budget_s=self._left_s(request))
                raise
            request[keys.SUBJECT] = subject
        if self._limiter is not None:
            key = f"sub:{subject}" if subject is not None else f"ip:{self._client_ip(request)}"
            await self._limiter.check(key, budget_s=self._left_s(request))

    def _left_s(self, request: web.Request) -> float:
        """What is left of the server's deadline: the rate limiter's Redis gets no more."""
        return self._deadline_s - request[keys.CONTEXT].elapsed()

    def decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        stamp(response.headers)
        if self._cors is not None and request.method != "OPTIONS":
            self._cors.decorate(request.headers, response.headers)
        if self._lifecycle.draining:
            # Tell keep-alive clients to reconnect (to an instance that is not leaving).
            response.force_close()

    async def resources(self, _app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: JWKS fetches while running; the rate limiter's storage closed at the
        end."""
        try:
            if self._auth is None:
                yield
            else:
                async for _ in self._auth.resources():
                    yield
        finally:
            if self._limiter is not None:
                await self._limiter.close()


def _limit_policy(settings: EdgeSettings) -> AdaptiveLimitPolicy:
    """The adaptive limit under the fixed ceiling `max_in_flight`. It starts at 64, not open:
    a burst of new connections at an open limit (1,024 requests admitted at once, 3,072
    downstream calls) held a worker's loop for over a second, refusals included; from 64 a
    worker that has room grows past any concurrency it is offered within a second."""
    ceiling = settings.max_in_flight
    if not settings.adaptive_concurrency:
        return AdaptiveLimitPolicy(initial=ceiling, minimum=ceiling, maximum=ceiling)
    return AdaptiveLimitPolicy(
        initial=min(AdaptiveLimitPolicy().initial, ceiling),
        minimum=min(AdaptiveLimitPolicy().minimum, ceiling),
        maximum=ceiling,
        queue_target_s=QUEUE_TARGET_S,
    )
