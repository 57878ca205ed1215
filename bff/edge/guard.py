"""`EdgeGuard`: the protections of `bff.edge`, composed into one call around the handler.

Built once per app from `EdgeSettings`; every protection that is off is `None` and costs a
single check. In this order, cheapest and most general first:

    CORS preflight  → answered here (204, or 403 for an origin/method not allowed)
    /openapi.json   → skips everything below (operators' endpoints are on the admin listener)
    no such route   → 404, no such method → 405 with `Allow` (a body changes neither), after
                      the client's rate limit: a flood of them still spends its allowance
    body on GET     → 413: every route is GET or HEAD, where a body has no meaning
    JWT auth        → 401 + WWW-Authenticate (only when a key is configured)
    rate limit      → 429 + Retry-After, RateLimit-* (key: token subject, else client IP)
    handler         → admission (bff.edge.admission) where the work is: after the cache has
                      said what is at hand, so a rate-limited flood is refused before it can
                      make the worker shed anybody else's page, and cheap answers never wait
    then on every response: CORS headers; `Connection: close` while draining.

It raises the `EdgeRejection`s of `bff.errors`; the middleware turns them into problems like
any other error, then calls `decorate` on whatever response goes out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from bff.context import CONTEXT, SUBJECT
from bff.edge.auth import JwtVerifier
from bff.edge.client_ip import ClientIp
from bff.edge.cors import Cors
from bff.edge.ratelimit import RateLimiter
from bff.errors import BodyTooLarge, Unauthorized
from bff.lifecycle import Lifecycle
from bff.settings import EdgeSettings

# The API's description: static, cheap, and needed before a client has a token. Operators'
# endpoints are not on this listener at all (bff.admin).
EXEMPT_PATHS = frozenset({"/openapi.json"})


class EdgeGuard:
    __slots__ = ("_auth", "_client_ip", "_cors", "_deadline_s", "_lifecycle", "_limiter")

    def __init__(self, settings: EdgeSettings, lifecycle: Lifecycle, *, deadline_s: float) -> None:
        self._lifecycle = lifecycle
        self._deadline_s = deadline_s
        self._cors = Cors(settings.cors) if settings.cors.origins else None
        self._auth = JwtVerifier(settings.auth) if settings.auth.enabled else None
        self._limiter = RateLimiter(settings.rate_limit) if settings.rate_limit.enabled else None
        self._client_ip = ClientIp(settings.trusted_proxies)

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and self._cors is not None and "Origin" in request.headers:
            return self._cors.preflight(request)
        if request.path in EXEMPT_PATHS:
            return await handler(request)
        not_routed = request.match_info.http_exception
        if not_routed is not None:
            if self._limiter is not None:
                ip_key = f"ip:{self._client_ip(request)}"
                await self._limiter.check(ip_key, budget_s=self._left_s(request))
            raise not_routed
        if request.body_exists:
            # Refused whatever its size, before anything reads it (aiohttp's own read cap is
            # edge.max_body_bytes).
            raise BodyTooLarge("a GET or HEAD request carries no body")
        if self._auth is not None or self._limiter is not None:
            await self._admit(request)
        return await handler(request)

    async def _admit(self, request: web.Request) -> None:
        subject = None
        if self._auth is not None:
            try:
                subject = await self._auth.subject(request.headers.get("Authorization"))
            except Unauthorized:
                # Bad tokens still spend the caller's IP allowance: no free token guessing.
                if self._limiter is not None:
                    ip_key = f"ip:{self._client_ip(request)}"
                    await self._limiter.check(ip_key, budget_s=self._left_s(request))
                raise
            request[SUBJECT] = subject
        if self._limiter is not None:
            key = f"sub:{subject}" if subject is not None else f"ip:{self._client_ip(request)}"
            await self._limiter.check(key, budget_s=self._left_s(request))

    def _left_s(self, request: web.Request) -> float:
        """What is left of the server's deadline: the rate limiter's Redis gets no more."""
        return self._deadline_s - request[CONTEXT].elapsed()

    def decorate(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
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
