"""Settings as frozen data, read from the environment in exactly one place.

`Settings.from_env(environ)` is the only function that looks at environment variables; tests
pass a plain dict. Every timeout, retry, breaker and bulkhead figure lives here, none in code.
An invalid value stops start-up with a `SettingsError` that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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

    @property
    def downstreams(self) -> tuple[DownstreamSettings, ...]:
        return (self.product, self.reviews, self.inventory)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, tty: bool = False) -> Settings:
        env = os.environ if environ is None else environ
        read = _Reader(env)
        return cls(
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
        )


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


class _Reader:
    __slots__ = ("_env",)

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

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
