"""Settings as frozen data, read from the environment in exactly one place.

`Settings.from_env(environ)` is the only function that looks at environment variables; tests
pass a plain dict. Every timeout, retry, breaker and bulkhead figure lives here, none in code.
An invalid value stops start-up with a `SettingsError` that names the variable.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from yarl import URL

SERVICES = ("product", "reviews", "inventory")
LogFormat = Literal["json", "console"]
SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)

JwtAlgorithm = Literal["HS256", "RS256", "ES256"]
RateLimitStrategy = Literal["moving-window", "fixed-window"]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable or flag has a value we cannot use."""


@dataclass(frozen=True, slots=True)
class RetrySettings:
    max_attempts: int = 3
    backoff_base_ms: float = 10.0
    backoff_max_ms: float = 60.0
    budget_ratio: float = 0.2
    budget_min_retries: int = 3
    budget_window_s: float = 10.0
    # Used as the latency floor until a service has answered often enough to measure it.
    min_attempt_ms: float = 10.0


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    fail_max: int = 5
    reset_timeout_s: float = 3.0


@dataclass(frozen=True, slots=True)
class OutlierSettings:
    consecutive_failures: int = 5
    base_ejection_s: float = 5.0
    max_ejection_s: float = 60.0


@dataclass(frozen=True, slots=True)
class DownstreamSettings:
    name: str
    urls: tuple[URL, ...]
    attempt_timeout_ms: float = 300.0
    max_in_flight: int = 512
    max_body_bytes: int = 1024 * 1024
    retry: RetrySettings = field(default_factory=RetrySettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    outlier: OutlierSettings = field(default_factory=OutlierSettings)


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """What the standard OTEL_* variables decide; the SDK reads its finer knobs itself
    (OTEL_EXPORTER_OTLP_HEADERS/_TIMEOUT, OTEL_BSP_*, OTEL_RESOURCE_ATTRIBUTES)."""

    # Off unless an OTLP endpoint (or OTEL_TRACES_EXPORTER=otlp) is configured: nothing
    # configured means no spans are made at all, not spans made and dropped.
    enabled: bool = False
    endpoint: str = "http://localhost:4318/v1/traces"
    service_name: str = "product-details-bff"
    sampler: str = "parentbased_always_on"
    sampler_arg: float = 1.0
    # How long a stopping worker waits for its last spans to leave (collector may be down).
    flush_timeout_s: float = 2.0


_DEFAULT_PORTS = {"product": 8081, "reviews": 8082, "inventory": 8083}


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


@dataclass(frozen=True, slots=True)
class Settings:
    product: DownstreamSettings
    reviews: DownstreamSettings
    inventory: DownstreamSettings
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    deadline_ms: float = 500.0
    # Kept back from every propagated budget so a downstream's own 504 reaches us before our
    # timer fires (network and scheduling slack).
    propagation_margin_ms: float = 5.0
    max_connections: int = 2048
    log_level: str = "INFO"
    log_format: LogFormat = "json"
    shutdown_grace_s: float = 10.0
    tracing: TracingSettings = field(default_factory=TracingSettings)
    # prometheus_client's multiprocess directory (PROMETHEUS_MULTIPROC_DIR); the supervisor
    # makes one for its workers when several run and none is given.
    metrics_dir: str | None = None
    edge: EdgeSettings = field(default_factory=EdgeSettings)

    @property
    def downstreams(self) -> tuple[DownstreamSettings, ...]:
        return (self.product, self.reviews, self.inventory)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, tty: bool = False) -> Settings:
        env = os.environ if environ is None else environ
        read = _Reader(env)
        settings = cls(
            product=_downstream(read, "product"),
            reviews=_downstream(read, "reviews"),
            inventory=_downstream(read, "inventory"),
            host=read("BFF_HOST", str, "127.0.0.1"),
            port=read("BFF_PORT", _port, 8080),
            workers=read("BFF_WORKERS", _positive_int, os.cpu_count() or 1),
            deadline_ms=read("BFF_DEADLINE_MS", _positive_float, 500.0),
            propagation_margin_ms=read("BFF_PROPAGATION_MARGIN_MS", _non_negative_float, 5.0),
            max_connections=read("BFF_MAX_CONNECTIONS", _positive_int, 2048),
            log_level=read("BFF_LOG_LEVEL", _log_level, "INFO"),
            log_format=read("BFF_LOG_FORMAT", _log_format, "console" if tty else "json"),
            shutdown_grace_s=read("BFF_SHUTDOWN_GRACE_S", _positive_float, 10.0),
            tracing=_tracing(read),
            metrics_dir=read("PROMETHEUS_MULTIPROC_DIR", str, None),
            edge=_edge(read),
        )
        if settings.edge.drain_delay_s >= settings.shutdown_grace_s:
            raise SettingsError("BFF_DRAIN_DELAY_S must be shorter than BFF_SHUTDOWN_GRACE_S")
        return settings


def _tracing(read: _Reader) -> TracingSettings:
    default = TracingSettings()
    if read("OTEL_SDK_DISABLED", str, "false").lower() == "true":
        return default
    exporter = read("OTEL_TRACES_EXPORTER", _traces_exporter, None)
    endpoint = read("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", _http_url, None)
    if endpoint is None:
        base = read("OTEL_EXPORTER_OTLP_ENDPOINT", _http_url, None)
        endpoint = None if base is None else base.rstrip("/") + "/v1/traces"
    return TracingSettings(
        enabled=exporter == "otlp" or (exporter is None and endpoint is not None),
        endpoint=endpoint or default.endpoint,
        service_name=read("OTEL_SERVICE_NAME", str, default.service_name),
        sampler=read("OTEL_TRACES_SAMPLER", _sampler, default.sampler),
        sampler_arg=read("OTEL_TRACES_SAMPLER_ARG", _ratio, default.sampler_arg),
    )


def _downstream(read: _Reader, name: str) -> DownstreamSettings:
    p = f"BFF_{name.upper()}_"
    return DownstreamSettings(
        name=name,
        urls=read(f"{p}URL", _urls, (URL(f"http://127.0.0.1:{_DEFAULT_PORTS[name]}"),)),
        attempt_timeout_ms=read(f"{p}TIMEOUT_MS", _positive_float, 300.0),
        max_in_flight=read(f"{p}MAX_IN_FLIGHT", _positive_int, 512),
        max_body_bytes=read(f"{p}MAX_BODY_BYTES", _positive_int, 1024 * 1024),
        retry=RetrySettings(
            max_attempts=read(f"{p}RETRY_ATTEMPTS", _positive_int, 3),
            backoff_base_ms=read(f"{p}RETRY_BACKOFF_BASE_MS", _non_negative_float, 10.0),
            backoff_max_ms=read(f"{p}RETRY_BACKOFF_MAX_MS", _non_negative_float, 60.0),
            budget_ratio=read(f"{p}RETRY_BUDGET_RATIO", _ratio, 0.2),
            budget_min_retries=read(f"{p}RETRY_BUDGET_MIN", _non_negative_int, 3),
            budget_window_s=read(f"{p}RETRY_BUDGET_WINDOW_S", _positive_float, 10.0),
            min_attempt_ms=read(f"{p}RETRY_MIN_ATTEMPT_MS", _positive_float, 10.0),
        ),
        breaker=BreakerSettings(
            fail_max=read(f"{p}BREAKER_FAIL_MAX", _positive_int, 5),
            reset_timeout_s=read(f"{p}BREAKER_RESET_S", _positive_float, 3.0),
        ),
        outlier=OutlierSettings(
            consecutive_failures=read(f"{p}EJECT_AFTER", _positive_int, 5),
            base_ejection_s=read(f"{p}EJECT_BASE_S", _positive_float, 5.0),
            max_ejection_s=read(f"{p}EJECT_MAX_S", _positive_float, 60.0),
        ),
    )


def _edge(read: _Reader) -> EdgeSettings:
    rate_limit = RateLimitSettings(
        rate=read("BFF_RATE_LIMIT_RATE", _non_negative_float, 100.0),
        burst=read("BFF_RATE_LIMIT_BURST", _positive_int, 200),
        strategy=read("BFF_RATE_LIMIT_STRATEGY", _strategy, "moving-window"),
        storage=read("BFF_RATE_LIMIT_STORAGE", _storage, "memory://"),
    )
    if rate_limit.enabled and rate_limit.burst < rate_limit.rate:
        raise SettingsError("BFF_RATE_LIMIT_BURST must be >= BFF_RATE_LIMIT_RATE")
    cors = CorsSettings(
        origins=read("BFF_CORS_ORIGINS", _origins, ()),
        allow_credentials=read("BFF_CORS_ALLOW_CREDENTIALS", _bool, False),
        max_age_s=read("BFF_CORS_MAX_AGE_S", _non_negative_int, 600),
    )
    if cors.allow_credentials and "*" in cors.origins:
        raise SettingsError("BFF_CORS_ORIGINS='*' cannot be combined with credentials")
    return EdgeSettings(
        max_in_flight=read("BFF_MAX_IN_FLIGHT", _positive_int, 1024),
        rate_limit=rate_limit,
        trusted_proxies=read("BFF_TRUSTED_PROXIES", _networks, ()),
        cors=cors,
        auth=_auth(read),
        max_request_line=read("BFF_MAX_REQUEST_LINE", _positive_int, 8190),
        max_header_size=read("BFF_MAX_HEADER_SIZE", _positive_int, 8190),
        max_headers=read("BFF_MAX_HEADERS", _positive_int, 100),
        max_body_bytes=read("BFF_MAX_BODY_BYTES", _non_negative_int, 16 * 1024),
        keepalive_timeout_s=read("BFF_KEEPALIVE_TIMEOUT_S", _positive_float, 15.0),
        drain_delay_s=read("BFF_DRAIN_DELAY_S", _non_negative_float, 2.0),
    )


def _auth(read: _Reader) -> AuthSettings:
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
    leeway_s = read("BFF_AUTH_JWT_LEEWAY_S", _non_negative_float, 30.0)
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


class _Reader:
    __slots__ = ("_env",)

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, name: str) -> str:
        return self._env.get(name, "").strip()

    def __call__(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._env.get(name, "").strip()
        if not raw:
            return default
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"{name}={raw!r}: {exc}") from None


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be an integer >= 1")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number 0-65535")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a finite number > 0")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a finite number >= 0")
    return value


def _ratio(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError("must be between 0 and 1")
    return value


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _log_format(raw: str) -> LogFormat:
    if raw == "json":
        return "json"
    if raw == "console":
        return "console"
    raise ValueError("must be 'json' or 'console'")


def _traces_exporter(raw: str) -> str:
    value = raw.lower()
    if value not in {"otlp", "none"}:
        raise ValueError("only 'otlp' (OTLP over HTTP) or 'none' are supported")
    return value


def _sampler(raw: str) -> str:
    value = raw.lower()
    if value not in SAMPLERS:
        raise ValueError(f"must be one of {', '.join(sorted(SAMPLERS))}")
    return value


def _http_url(raw: str) -> str:
    url = URL(raw)
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError("must be an http(s) URL")
    return raw


def _urls(raw: str) -> tuple[URL, ...]:
    urls = []
    for part in raw.split(","):
        url = URL(part.strip())
        if url.scheme not in {"http", "https"} or not url.host:
            raise ValueError(f"{part.strip()!r} is not an http(s) base URL")
        urls.append(url)
    return tuple(urls)


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


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
