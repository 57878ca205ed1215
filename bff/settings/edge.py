"""Edge settings: rate limits, load shedding, CORS, JWT auth, server limits, drain.

Operators set the limits, the proxies they trust, the origins and the JWT keys; the server
limits and the CORS details are fixed values, each with its reason."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, cast

from bff.settings.addresses import IpNetwork, Networks, Origins, Url
from bff.settings.credentials import PublicKey, Secret
from bff.settings.declaration import Computed, Context, derived, setting
from bff.settings.kinds import COUNT, DURATION_S, PER_SECOND, Choice, Number, Text

__all__ = [
    "MAX_IN_FLIGHT",
    "AuthSettings",
    "CorsSettings",
    "EdgeSettings",
    "IpNetwork",
    "JwtAlgorithm",
    "RateLimitSettings",
    "RateLimitStrategy",
]

JwtAlgorithm = Literal["HS256", "RS256", "ES256"]
RateLimitStrategy = Literal["moving-window", "fixed-window"]
# Cache misses at work or waiting their turn per worker, at most (BFF_MAX_IN_FLIGHT's default).
MAX_IN_FLIGHT = 1024


def _twice_the_rate(values: Context) -> int:
    rate: float = values["BFF_RATE_LIMIT_RATE"]
    return math.ceil(2 * rate)


def _shared_storage(values: Context) -> str:
    redis_url: str | None = values["BFF_REDIS_URL"]
    return redis_url or "memory://"


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """`burst` requests per client in any window of `burst / rate` seconds (whole, >= 1)."""

    # Off by default: behind a load balancer without BFF_TRUSTED_PROXIES every user would share
    # the balancer's one bucket (a load test from one address got 95% 429s at 100 req/s).
    rate: float = setting(
        "BFF_RATE_LIMIT_RATE",
        Number(PER_SECOND, 0, 1e9),
        "sustained requests/s per client; `0`: no rate limit",
        default=0.0,
    )
    burst: int = setting(
        "BFF_RATE_LIMIT_BURST",
        COUNT,
        "requests per window of `burst / rate` s (at least the rate)",
        default=0,
        computed=Computed("twice the rate", _twice_the_rate),
    )
    # A moving window never lets twice the burst through at a window's edge, as a fixed one
    # does; its cost is one sorted-set operation more on Redis.
    strategy: RateLimitStrategy = "moving-window"
    # BFF_REDIS_URL when set: one limit shared by every worker and instance.
    storage: str = derived("memory://", _shared_storage)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @property
    def window_s(self) -> int:
        return max(1, round(self.burst / self.rate)) if self.rate > 0 else 1


# What a page may send us: the headers our API reads or forwards, and the W3C trace context
# a browser instrumented with OpenTelemetry adds to every fetch.
DEFAULT_CORS_HEADERS = (
    "authorization",
    "accept-language",
    "x-request-id",
    "x-request-timeout-ms",
    "traceparent",
    "tracestate",
)


@dataclass(frozen=True, slots=True)
class CorsSettings:
    origins: tuple[str, ...] = setting(
        "BFF_CORS_ORIGINS",
        Origins(),
        "exact origins, or `*`; none: no CORS headers at all",
        default=(),
    )
    allow_headers: tuple[str, ...] = DEFAULT_CORS_HEADERS  # lower case
    # Off: the API authenticates with a bearer token, which needs no cookies nor credentials
    # mode; and credentials with "*" would hand every site the user's session.
    allow_credentials: bool = False
    # Ten minutes, Chromium's own ceiling for a preflight cache (2 h is Firefox's).
    max_age_s: int = 600


def _key_algorithm(values: Context) -> JwtAlgorithm | None:
    """The algorithm a key is for: a secret's HS256, a PEM's own, a JWKS's usual RS256."""
    if values["BFF_AUTH_JWT_SECRET"]:
        return "HS256"
    if values["BFF_AUTH_JWT_PUBLIC_KEY"]:
        return cast(JwtAlgorithm, PublicKey.algorithm(values["BFF_AUTH_JWT_PUBLIC_KEY"]))
    return "RS256" if values["BFF_AUTH_JWT_JWKS_URL"] else None


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """JWT verification; on when a key is set: the HS256 `secret`, a PEM `public_key`, or
    `jwks_url`, the identity provider's key set, fetched at start and on an unknown `kid`."""

    # RFC 7518 section 3.2: an HS256 key at least as long as the hash, 256 bits.
    secret: bytes = setting(
        "BFF_AUTH_JWT_SECRET", Secret(32), "HS256 secret; turns auth on", default=b""
    )
    public_key: bytes = setting(
        "BFF_AUTH_JWT_PUBLIC_KEY",
        PublicKey(),
        "PEM public key (RSA → RS256, EC P-256 → ES256); turns auth on",
        default=b"",
    )
    jwks_url: str | None = setting(
        "BFF_AUTH_JWT_JWKS_URL",
        Url("an http(s) URL such as https://idp.example/jwks"),
        "the identity provider's key set (JWKS); turns auth on",
        default=None,
    )
    algorithm: JwtAlgorithm | None = setting(
        "BFF_AUTH_JWT_ALGORITHM",
        Choice(("HS256", "RS256", "ES256")),
        "must fit the key; with a JWKS, `ES256` for EC keys (RS256 otherwise)",
        default=None,
        computed=Computed("from the key", _key_algorithm),
    )
    issuer: str | None = setting("BFF_AUTH_JWT_ISSUER", Text(), "required `iss`", default=None)
    audience: str | None = setting("BFF_AUTH_JWT_AUDIENCE", Text(), "required `aud`", default=None)
    # Clock skew tolerated on exp/nbf/iat: NTP keeps hosts within a second; 30 s covers a
    # laptop or a VM resumed from sleep without making an expired token live much longer.
    leeway_s: float = 30.0

    @property
    def enabled(self) -> bool:
        return self.algorithm is not None

    @property
    def key(self) -> bytes:
        """The HS256 secret or the PEM public key (empty with a JWKS)."""
        return self.secret or self.public_key


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """What the BFF's front door lets in: limits, auth, CORS, server limits, drain."""

    max_in_flight: int = setting(
        "BFF_MAX_IN_FLIGHT",
        COUNT,
        "per worker: the most cache misses at work or waiting their turn (the limit that"
        " admission learns stays under it); past it, a 503",
        default=MAX_IN_FLIGHT,
    )
    # Under that ceiling, how many misses work at once is learnt from the worker's own delay
    # (bff.edge.admission); off: the fixed ceiling alone.
    adaptive_concurrency: bool = True
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    trusted_proxies: tuple[IpNetwork, ...] = setting(
        "BFF_TRUSTED_PROXIES",
        Networks(),
        "IPs/CIDRs whose `X-Forwarded-For` is believed (your load balancer)",
        default=(),
    )
    cors: CorsSettings = field(default_factory=CorsSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    # aiohttp's own line limits (nginx's 8 KiB buffers): our URLs are under 100 bytes and the
    # longest header a browser sends (cookies, a JWT) fits.
    max_request_line: int = 8190
    max_header_size: int = 8190
    # A browser sends about 20 headers; aiohttp would accept 32768.
    max_headers: int = 100
    # The API takes no body (the edge guard answers 413 to a GET or HEAD with one): this only
    # bounds what a handler would read, 16 KiB, refusing an upload at once.
    max_body_bytes: int = 16 * 1024
    # aiohttp runs this idle timer from the connection's start and after each response until
    # a whole request head has arrived: it is the keep-alive and the header-read timeout.
    # 15 s: longer than a browser's gap between page loads, and longer than the idle timeout
    # of the proxy in front (nginx's upstream keepalive_timeout, 10 s in deploy/nginx), so the
    # proxy, not us, closes an idle connection and never sends on one we just closed.
    keepalive_timeout_s: float = 15.0
    drain_delay_s: float = setting(
        "BFF_DRAIN_DELAY_S",
        DURATION_S,
        "on SIGTERM, `/readyz` says 503 this long before the listener closes (your balancer's"
        " deregistration time)",
        default=2.0,
    )
