"""Edge settings: rate limits, load shedding, CORS, JWT auth, server limits, drain."""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from yarl import URL

from bff.settings.parse import (
    Reader,
    SettingsError,
    boolean,
    http_url,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)

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
    allow_credentials: bool = False
    max_age_s: int = 600


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """JWT verification; on when a key is set. `key`: the HS256 secret or a PEM public key;
    or `jwks_url`: the identity provider's key set, fetched at start and on an unknown `kid`."""

    algorithm: JwtAlgorithm | None = None
    key: bytes = b""
    issuer: str | None = None
    audience: str | None = None
    leeway_s: float = 30.0
    jwks_url: str | None = None

    @property
    def enabled(self) -> bool:
        return self.algorithm is not None


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """What the BFF's front door lets in: limits, auth, CORS, server limits, drain."""

    max_in_flight: int = 1024  # per worker; past it: 503 at once
    # Below that ceiling, a limit learnt from latency (bff.resilience.adaptive); off: the
    # fixed cap alone.
    adaptive_concurrency: bool = True
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    trusted_proxies: tuple[IpNetwork, ...] = ()  # whose X-Forwarded-For we believe
    cors: CorsSettings = field(default_factory=CorsSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    max_request_line: int = 8190
    max_header_size: int = 8190
    max_headers: int = 100
    max_body_bytes: int = 16 * 1024
    # aiohttp runs this idle timer from the connection's start and after each response until
    # a whole request head has arrived: it is the keep-alive and the header-read timeout.
    keepalive_timeout_s: float = 15.0
    drain_delay_s: float = 2.0  # /readyz says 503 this long before the listener closes


def read_edge(read: Reader, redis_url: str | None = None) -> EdgeSettings:
    """A variable not set keeps the dataclasses' default (written once, above).

    `redis_url` (BFF_REDIS_URL, read with the server settings): shared state, here the rate
    limit's storage."""
    d, rl, c = _DEFAULT, _DEFAULT.rate_limit, _DEFAULT.cors
    if read.raw("BFF_RATE_LIMIT_STORAGE"):
        raise SettingsError("BFF_RATE_LIMIT_STORAGE is replaced by BFF_REDIS_URL")
    rate = read("BFF_RATE_LIMIT_RATE", non_negative_float, rl.rate)
    rate_limit = RateLimitSettings(
        rate=rate,
        burst=read("BFF_RATE_LIMIT_BURST", positive_int, math.ceil(2 * rate)),
        strategy=read("BFF_RATE_LIMIT_STRATEGY", _strategy, rl.strategy),
        storage=redis_url or rl.storage,
    )
    if rate_limit.enabled and rate_limit.burst < rate_limit.rate:
        raise SettingsError("BFF_RATE_LIMIT_BURST must be >= BFF_RATE_LIMIT_RATE")
    cors = CorsSettings(
        origins=read("BFF_CORS_ORIGINS", _origins, c.origins),
        allow_headers=read("BFF_CORS_ALLOW_HEADERS", _header_names, c.allow_headers),
        allow_credentials=read("BFF_CORS_ALLOW_CREDENTIALS", boolean, c.allow_credentials),
        max_age_s=read("BFF_CORS_MAX_AGE_S", non_negative_int, c.max_age_s),
    )
    if cors.allow_credentials and "*" in cors.origins:
        raise SettingsError("BFF_CORS_ORIGINS='*' cannot be combined with credentials")
    return EdgeSettings(
        max_in_flight=read("BFF_MAX_IN_FLIGHT", positive_int, d.max_in_flight),
        rate_limit=rate_limit,
        trusted_proxies=read("BFF_TRUSTED_PROXIES", _networks, d.trusted_proxies),
        cors=cors,
        auth=_auth(read),
        max_request_line=read("BFF_MAX_REQUEST_LINE", positive_int, d.max_request_line),
        max_header_size=read("BFF_MAX_HEADER_SIZE", positive_int, d.max_header_size),
        max_headers=read("BFF_MAX_HEADERS", positive_int, d.max_headers),
        max_body_bytes=read("BFF_MAX_BODY_BYTES", non_negative_int, d.max_body_bytes),
        keepalive_timeout_s=read("BFF_KEEPALIVE_TIMEOUT_S", positive_float, d.keepalive_timeout_s),
        drain_delay_s=read("BFF_DRAIN_DELAY_S", non_negative_float, d.drain_delay_s),
    )


_DEFAULT = EdgeSettings()


def _auth(read: Reader) -> AuthSettings:
    """One key source at most; the algorithm is pinned to the key's kind and checked here."""
    secret = read.raw("BFF_AUTH_JWT_SECRET")
    pem = read.raw("BFF_AUTH_JWT_PUBLIC_KEY").replace("\\n", "\n")
    pem_file = read.raw("BFF_AUTH_JWT_PUBLIC_KEY_FILE")
    jwks_url = read("BFF_AUTH_JWT_JWKS_URL", http_url, None)
    if sum(map(bool, (secret, pem, pem_file, jwks_url))) > 1:
        raise SettingsError(
            "set only one of BFF_AUTH_JWT_SECRET, BFF_AUTH_JWT_PUBLIC_KEY, "
            "BFF_AUTH_JWT_PUBLIC_KEY_FILE, BFF_AUTH_JWT_JWKS_URL"
        )
    if pem_file:
        try:
            pem = Path(pem_file).read_text()
        except OSError as exc:
            raise SettingsError(f"BFF_AUTH_JWT_PUBLIC_KEY_FILE={pem_file!r}: {exc}") from None
    requested = read("BFF_AUTH_JWT_ALGORITHM", _algorithm, None)
    issuer = read.raw("BFF_AUTH_JWT_ISSUER") or None
    audience = read.raw("BFF_AUTH_JWT_AUDIENCE") or None
    leeway_s = read("BFF_AUTH_JWT_LEEWAY_S", non_negative_float, _DEFAULT.auth.leeway_s)
    if secret:
        if requested not in (None, "HS256"):
            raise SettingsError(f"BFF_AUTH_JWT_ALGORITHM={requested}: a secret means HS256")
        if len(secret.encode()) < 32:
            # RFC 7518 §3.2: an HS256 key at least as long as the hash (256 bits).
            raise SettingsError("BFF_AUTH_JWT_SECRET: must be at least 32 bytes")
        key = secret.encode()
        return AuthSettings("HS256", key, issuer, audience, leeway_s)
    if pem:
        name = "BFF_AUTH_JWT_PUBLIC_KEY_FILE" if pem_file else "BFF_AUTH_JWT_PUBLIC_KEY"
        algorithm = _public_key_algorithm(name, pem.encode(), requested)
        return AuthSettings(algorithm, pem.encode(), issuer, audience, leeway_s)
    if jwks_url:
        if requested == "HS256":
            raise SettingsError("BFF_AUTH_JWT_ALGORITHM=HS256: a JWKS means RS256 or ES256")
        algorithm = requested or "RS256"
        return AuthSettings(algorithm, b"", issuer, audience, leeway_s, jwks_url=jwks_url)
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


def _strategy(raw: str) -> RateLimitStrategy:
    if raw == "moving-window":
        return "moving-window"
    if raw == "fixed-window":
        return "fixed-window"
    raise ValueError("must be 'moving-window' or 'fixed-window'")


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field name


def _header_names(raw: str) -> tuple[str, ...]:
    names = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
    bad = [n for n in names if _TOKEN.fullmatch(n) is None]
    if bad:
        raise ValueError(f"not a header name: {bad[0]!r}")
    return names


def _algorithm(raw: str) -> JwtAlgorithm:
    value = raw.upper()
    if value == "HS256":
        return "HS256"
    if value == "RS256":
        return "RS256"
    if value == "ES256":
        return "ES256"
    raise ValueError("must be HS256, RS256 or ES256")


def _origins(raw: str) -> tuple[str, ...]:
    origins = []
    for part in raw.split(","):
        origin = part.strip().rstrip("/")
        if not origin:
            continue
        url = URL(origin)
        if origin != "*" and (
            url.scheme not in {"http", "https"} or not url.host or url.path not in {"", "/"}
        ):
            raise ValueError(f"{origin!r} is not '*' nor an origin like https://shop.example")
        origins.append(origin)
    return tuple(origins)


def _networks(raw: str) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(p.strip()) for p in raw.split(",") if p.strip())
