"""`EdgeGuard`: the protections of `bff.edge`, composed into one call around the handler.

Built once per app from `EdgeSettings`; every protection that is off is `None` and costs a
single check. It raises the `EdgeRejection`s of `bff.errors`; the edge middleware turns them
into problems like any other error, then calls `decorate` on whatever response goes out.
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
from bff.settings import EdgeSettings

# The API's description: static, cheap, and needed before a client has a token. Operators'
# endpoints are not on this listener at all (bff.admin).
EXEMPT_PATHS = frozenset({"/openapi.json"})
_SHED_HEADERS = {"Retry-After": "1"}


class EdgeGuard:
    __slots__ = (
        "_auth",
        "_client_ip",
        "_cors",
        "_in_flight",
        "_lifecycle",
        "_limiter",
        "_max_body",
        "_max_in_flight",
    )

    def __init__(self, settings: EdgeSettings, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle
        self._cors = Cors(settings.cors) if settings.cors.origins else None
        self._auth = JwtVerifier(settings.auth) if settings.auth.enabled else None
        self._limiter = RateLimiter(settings.rate_limit) if settings.rate_limit.enabled else None
        self._client_ip = ClientIp(settings.trusted_proxies)
        self._max_body = settings.max_body_bytes
        self._max_in_flight = settings.max_in_flight
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and self._cors is not None and "Origin" in request.headers:
            return self._cors.preflight(request)
        if request.path in EXEMPT_PATHS:
            return await handler(request)
        if request.body_exists:
            length = request.content_length
            if length is None or length > self._max_body:
                raise BodyTooLarge(f"a request body may be at most {self._max_body} bytes")
        if self._in_flight >= self._max_in_flight:
            # No queue: waiting would only spend the deadline of a request we cannot serve.
            metrics.edge_rejections("shed").inc()
            raise ServiceOverloaded("this instance is at its in-flight limit", _SHED_HEADERS)
        self._in_flight += 1
        try:
            await self._admit(request)
            return await handler(request)
        finally:
            self._in_flight -= 1

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
                    await self._limiter.check(f"ip:{self._client_ip(request)}")
                raise
            request[keys.SUBJECT] = subject
        if self._limiter is not None:
            key = f"sub:{subject}" if subject is not None else f"ip:{self._client_ip(request)}"
            await self._limiter.check(key)

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
