"""CORS for an allow-list of origins: preflights answered, response headers for browsers.

Origins match exactly (scheme, host and port). `*` is allowed only without credentials (the
settings refuse the pair): a wildcard with credentials would let any site read a user's data.
A response for an allowed origin names that origin, never `*` when there is a list, and
carries `Vary: Origin` so caches keep one copy per origin. `Server-Timing` is exposed and
`Timing-Allow-Origin` set, so the page can read our timings in its Resource Timing entries.
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from bff.errors import CorsRejected
from bff.settings import CorsSettings

ALLOWED_METHODS = frozenset({"GET", "HEAD"})
EXPOSED = (
    "Server-Timing, X-Request-ID, Retry-After, RateLimit-Limit, RateLimit-Remaining, "
    "RateLimit-Reset"
)


class Cors:
    __slots__ = ("_credentials", "_headers", "_max_age", "_origins", "_wildcard")

    def __init__(self, settings: CorsSettings) -> None:
        # BFF_CORS_ALLOW_HEADERS: by default what our API reads or forwards, plus W3C trace
        # context (a browser instrumented with OpenTelemetry sends `traceparent`).
        self._headers = frozenset(settings.allow_headers)
        self._origins = frozenset(settings.origins)
        self._wildcard = "*" in self._origins
        self._credentials = settings.allow_credentials
        self._max_age = str(settings.max_age_s)

    def _allowed(self, origin: str | None) -> bool:
        return origin is not None and (self._wildcard or origin in self._origins)

    def preflight(self, request: web.Request) -> web.Response:
        """Answer an OPTIONS preflight: 204 with the grants, or `CorsRejected` (403)."""
        headers = request.headers
        origin = headers.get("Origin")
        if not self._allowed(origin):
            raise CorsRejected("this origin may not call the API from a browser")
        method = headers.get("Access-Control-Request-Method", "")
        if method not in ALLOWED_METHODS:
            raise CorsRejected(f"method not allowed; allowed: {', '.join(sorted(ALLOWED_METHODS))}")
        requested = headers.get("Access-Control-Request-Headers", "")
        names = [h.strip().lower() for h in requested.split(",") if h.strip()]
        if any(name not in self._headers for name in names):
            raise CorsRejected("a requested header is not allowed")
        assert origin is not None
        out: CIMultiDict[str] = CIMultiDict()
        out["Access-Control-Allow-Origin"] = "*" if self._wildcard else origin
        if self._credentials:
            out["Access-Control-Allow-Credentials"] = "true"
        out["Access-Control-Allow-Methods"] = "GET, HEAD"
        if names:
            out["Access-Control-Allow-Headers"] = ", ".join(names)
        out["Access-Control-Max-Age"] = self._max_age
        out["Vary"] = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        return web.Response(status=204, headers=out)

    def decorate(self, request_headers: CIMultiDictProxy[str], headers: CIMultiDict[str]) -> None:
        """Add the CORS response headers for an allowed origin (every response, errors too,
        but not preflights: those carry their own grants, and a refused one none)."""
        origin = request_headers.get("Origin")
        if not self._wildcard:
            vary = headers.get("Vary")
            if vary is None:
                headers["Vary"] = "Origin"
            elif "origin" not in vary.lower():
                headers["Vary"] = f"{vary}, Origin"
        if not self._allowed(origin):
            return
        assert origin is not None
        allow = "*" if self._wildcard else origin
        headers["Access-Control-Allow-Origin"] = allow
        headers["Access-Control-Expose-Headers"] = EXPOSED
        headers["Timing-Allow-Origin"] = allow
        if self._credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
