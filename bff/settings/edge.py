"""Edge settings: rate limits, load shedding, CORS, JWT auth, server limits, drain.

Operators set the limits, the proxies they trust, the origins and the JWT keys; the server
limits and the CORS details are fixed values, each with its reason."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import Literal

from msgspec import UNSET, UnsetType

from bff.settings.environment import Environment, SettingsError, given

JwtAlgorithm = Literal["HS256", "RS256", "ES256"]
RateLimitStrategy = Literal["moving-window", "fixed-window"]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """`burst` requests per client in any window of `burst / rate` seconds (whole, >= 1)."""

    # Off by default: behind a load balancer without BFF_TRUSTED_PROXIES every user would share
    # the balancer's one bucket (a load test from one address got 95% 429s at 100 req/s).
    rate: float = 0.0  # sustained requests per second per client; 0: no limit
    burst: int = 0  # 0: twice the rate
    # A moving window never lets twice the burst through at a window's edge, as a fixed one
    # does; its cost is one sorted-set operation more on Redis.
    strategy: RateLimitStrategy = "moving-window"
    storage: str = "memory://"  # or BFF_REDIS_URL: one limit shared by all instances

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
    origins: tuple[str, ...] = ()  # exact origins, or ("*",); empty: no CORS headers at all
    allow_headers: tuple[str, ...] = DEFAULT_CORS_HEADERS  # lower case
    # Off: the API authenticates with a bearer token, which needs no cookies nor credentials
    # mode; and credentials with "*" would hand every site the user's session.
    allow_credentials: bool = False
    # Ten minutes, Chromium's own ceiling for a preflight cache (2 h is Firefox's).
    max_age_s: int = 600

    def __post_init__(self) -> None:
        if self.allow_credentials and "*" in self.origins:
            raise ValueError("CORS origins '*' cannot be combined with credentials")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """JWT verification; on when a key is set. `key`: the HS256 secret or a PEM public key;
    or `jwks_url`: the identity provider's key set, fetched at start and on an unknown `kid`."""

    algorithm: JwtAlgorithm | None = None
    key: bytes = b""
    issuer: str | None = None
    audience: str | None = None
    # Clock skew tolerated on exp/nbf/iat: NTP keeps hosts within a second; 30 s covers a
    # laptop or a VM resumed from sleep without making an expired token live much longer.
    leeway_s: float = 30.0
    jwks_url: str | None = None

    @property
    def enabled(self) -> bool:
        return self.algorithm is not None


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """What the BFF's front door lets in: limits, auth, CORS, server limits, drain."""

    max_in_flight: int = 1024  # per worker; past it: 503 at once
    # Below that ceiling, refusals when the worker cannot keep up (bff.edge.admission); off: the
    # fixed cap alone.
    adaptive_concurrency: bool = True
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    trusted_proxies: tuple[IpNetwork, ...] = ()  # whose X-Forwarded-For we believe
    cors: CorsSettings = field(default_factory=CorsSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    # aiohttp's own line limits (nginx's 8 KiB buffers): our URLs are under 100 bytes and the
    # longest header a browser sends (cookies, a JWT) fits.
    max_request_line: int = 8190
    max_header_size: int = 8190
    # A browser sends about 20 headers; aiohttp would accept 32768.
    max_headers: int = 100
    # The API takes no body: 16 KiB refuses an upload at once and leaves room for a client
    # that sends a small one with GET.
    max_body_bytes: int = 16 * 1024
    # aiohttp runs this idle timer from the connection's start and after each response until
    # a whole request head has arrived: it is the keep-alive and the header-read timeout.
    # 15 s: longer than a browser's gap between page loads, and longer than the idle timeout
    # of the proxy in front (nginx's upstream keepalive_timeout, 10 s in deploy/nginx), so the
    # proxy, not us, closes an idle connection and never sends on one we just closed.
    keepalive_timeout_s: float = 15.0
    drain_delay_s: float = 2.0  # /readyz says 503 this long before the listener closes


def edge_from(env: Environment, redis_url: str | None = None) -> EdgeSettings:
    """The operators' edge variables; every other field keeps the default above.

    `redis_url` (BFF_REDIS_URL, read with the server settings): shared state, here the rate
    limit's storage."""
    rate = 0.0 if env.rate_limit_rate is UNSET else env.rate_limit_rate
    burst = math.ceil(2 * rate) if env.rate_limit_burst is UNSET else env.rate_limit_burst
    rate_limit = RateLimitSettings(rate=rate, burst=burst, storage=redis_url or "memory://")
    if rate_limit.enabled and rate_limit.burst < rate_limit.rate:
        raise SettingsError("BFF_RATE_LIMIT_BURST must be >= BFF_RATE_LIMIT_RATE")
    origins = () if env.cors_origins is UNSET else tuple(o.rstrip("/") for o in env.cors_origins)
    return EdgeSettings(
        rate_limit=rate_limit,
        cors=CorsSettings(origins=origins),
        auth=auth_from(env),
        **given(
            max_in_flight=env.max_in_flight,
            trusted_proxies=_networks(env.trusted_proxies),
            drain_delay_s=env.drain_delay_s,
        ),
    )


def auth_from(env: Environment) -> AuthSettings:
    """One key source at most; the algorithm is pinned to the key's kind and checked here."""
    secret, pem, jwks_url = env.auth_jwt_secret, env.auth_jwt_public_key, env.auth_jwt_jwks_url
    if sum(v is not UNSET for v in (secret, pem, jwks_url)) > 1:
        raise SettingsError(
            "set only one of BFF_AUTH_JWT_SECRET, BFF_AUTH_JWT_PUBLIC_KEY, BFF_AUTH_JWT_JWKS_URL"
        )
    requested = None if env.auth_jwt_algorithm is UNSET else env.auth_jwt_algorithm
    claims = given(issuer=env.auth_jwt_issuer, audience=env.auth_jwt_audience)
    if secret is not UNSET:
        if requested not in (None, "HS256"):
            raise SettingsError(f"BFF_AUTH_JWT_ALGORITHM={requested}: a secret means HS256")
        return AuthSettings("HS256", secret.encode(), **claims)
    if pem is not UNSET:
        key = pem.replace("\\n", "\n").encode()
        algorithm = _public_key_algorithm("BFF_AUTH_JWT_PUBLIC_KEY", key, requested)
        return AuthSettings(algorithm, key, **claims)
    if jwks_url is not UNSET:
        if requested == "HS256":
            raise SettingsError("BFF_AUTH_JWT_ALGORITHM=HS256: a JWKS means RS256 or ES256")
        return AuthSettings(requested or "RS256", b"", jwks_url=jwks_url, **claims)
    if requested is not None:
        raise SettingsError("BFF_AUTH_JWT_ALGORITHM is set but no secret or public key is")
    return AuthSettings()


def _public_key_algorithm(name: str, pem: bytes, requested: JwtAlgorithm | None) -> JwtAlgorithm:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem)
    except ValueError as exc:
        raise SettingsError(f"{name}: not a PEM public key ({exc})") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        algorithm: JwtAlgorithm = "RS256"
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm = "ES256"
    else:
        raise SettingsError(f"{name}: need an RSA key (>= 2048 bits) or an EC P-256 key")
    if requested not in (None, algorithm):
        raise SettingsError(f"BFF_AUTH_JWT_ALGORITHM={requested} does not fit {name}")
    return algorithm


def _networks(raw: tuple[str, ...] | UnsetType) -> tuple[IpNetwork, ...] | UnsetType:
    if raw is UNSET:
        return UNSET
    try:
        return tuple(ipaddress.ip_network(p) for p in raw)
    except ValueError as exc:
        raise SettingsError(f"BFF_TRUSTED_PROXIES={','.join(raw)!r}: {exc}") from None
