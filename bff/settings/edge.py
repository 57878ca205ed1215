"""Edge settings: rate limits, load shedding, CORS, JWT auth, server limits, drain."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from yarl import URL

from bff.settings.parse import (
    Reader,
    SettingsError,
    boolean,
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

    rate: float = 100.0  # sustained requests per second per client; 0 turns limiting off
    burst: int = 200
    strategy: RateLimitStrategy = "moving-window"
    storage: str = "memory://"  # or redis://host:port[/db]: one limit shared by all instances

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @property
    def window_s(self) -> int:
        return max(1, round(self.burst / self.rate)) if self.rate > 0 else 1


@dataclass(frozen=True, slots=True)
class CorsSettings:
    origins: tuple[str, ...] = ()  # exact origins, or ("*",); empty: no CORS headers at all
    allow_credentials: bool = False
    max_age_s: int = 600


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """JWT verification; on when a key is set. `key`: the HS256 secret or a PEM public key."""

    algorithm: JwtAlgorithm | None = None
    key: bytes = b""
    issuer: str | None = None
    audience: str | None = None
    leeway_s: float = 30.0

    @property
    def enabled(self) -> bool:
        return self.algorithm is not None


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """What the BFF's front door lets in: limits, auth, CORS, server limits, drain."""

    max_in_flight: int = 1024  # per worker; past it: 503 at once
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


def read_edge(read: Reader) -> EdgeSettings:
    """A variable not set keeps the dataclasses' default (written once, above)."""
    d, rl, c = _DEFAULT, _DEFAULT.rate_limit, _DEFAULT.cors
    rate_limit = RateLimitSettings(
        rate=read("BFF_RATE_LIMIT_RATE", non_negative_float, rl.rate),
        burst=read("BFF_RATE_LIMIT_BURST", positive_int, rl.burst),
        strategy=read("BFF_RATE_LIMIT_STRATEGY", _strategy, rl.strategy),
        storage=read("BFF_RATE_LIMIT_STORAGE", _storage, rl.storage),
    )
    if rate_limit.enabled and rate_limit.burst < rate_limit.rate:
        raise SettingsError("BFF_RATE_LIMIT_BURST must be >= BFF_RATE_LIMIT_RATE")
    cors = CorsSettings(
        origins=read("BFF_CORS_ORIGINS", _origins, c.origins),
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
    if sum(map(bool, (secret, pem, pem_file))) > 1:
        raise SettingsError(
            "set only one of BFF_AUTH_JWT_SECRET, BFF_AUTH_JWT_PUBLIC_KEY, "
            "BFF_AUTH_JWT_PUBLIC_KEY_FILE"
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


def _storage(raw: str) -> str:
    url = URL(raw)
    if raw == "memory://" or (url.scheme in {"redis", "rediss"} and url.host):
        return raw
    raise ValueError("must be memory:// or redis[s]://host:port[/db]")


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
