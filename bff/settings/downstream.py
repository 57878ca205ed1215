"""Per downstream service: URLs, per-attempt timeout, bulkhead, body cap, retry, breaker and
outlier ejection. Variables `BFF_<SERVICE>_...`; every service has the same defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from yarl import URL

from bff.settings.parse import (
    Reader,
    http_url,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    ratio,
)

_DEFAULT_PORTS = {"product": 8081, "reviews": 8082, "inventory": 8083}


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
    """Open when `failure_rate` of the calls in the last `window_s` failed, once there were at
    least `min_calls`. 0.8, not resilience4j's 0.5: the retry budget already caps what a
    failing service costs (1.2 calls per request), so the breaker is for a service that is
    down, and a service failing half its calls still completes most answers with retries."""

    window_s: float = 10.0
    min_calls: int = 20
    failure_rate: float = 0.8
    reset_timeout_s: float = 3.0


@dataclass(frozen=True, slots=True)
class OutlierSettings:
    consecutive_failures: int = 5
    base_ejection_s: float = 5.0
    max_ejection_s: float = 60.0


@dataclass(frozen=True, slots=True)
class HedgeSettings:
    """Delayed hedging of a call that has not answered after the service's recent p95."""

    enabled: bool = True
    # At most this share of first calls may be hedged (over `budget_window_s`), plus
    # `budget_min` so that a quiet service can still hedge its odd slow call.
    budget_ratio: float = 0.1
    budget_min: int = 1
    budget_window_s: float = 10.0
    # Never sooner (a service faster than this gains nothing from a second call) nor later
    # (past it, a plain retry after the attempt timeout would do as well).
    min_delay_ms: float = 10.0
    max_delay_ms: float = 150.0


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
    hedge: HedgeSettings = field(default_factory=HedgeSettings)


def read_downstream(read: Reader, name: str) -> DownstreamSettings:
    """`BFF_<NAME>_*`; a variable not set keeps the dataclasses' default (written once, above)."""
    p = f"BFF_{name.upper()}_"
    d, r, b, o = _DEFAULT, _DEFAULT.retry, _DEFAULT.breaker, _DEFAULT.outlier
    return DownstreamSettings(
        name=name,
        urls=read(f"{p}URL", _urls, (URL(f"http://127.0.0.1:{_DEFAULT_PORTS[name]}"),)),
        attempt_timeout_ms=read(f"{p}TIMEOUT_MS", positive_float, d.attempt_timeout_ms),
        max_in_flight=read(f"{p}MAX_IN_FLIGHT", positive_int, d.max_in_flight),
        max_body_bytes=read(f"{p}MAX_BODY_BYTES", positive_int, d.max_body_bytes),
        retry=RetrySettings(
            max_attempts=read(f"{p}RETRY_ATTEMPTS", positive_int, r.max_attempts),
            backoff_base_ms=read(
                f"{p}RETRY_BACKOFF_BASE_MS", non_negative_float, r.backoff_base_ms
            ),
            backoff_max_ms=read(f"{p}RETRY_BACKOFF_MAX_MS", non_negative_float, r.backoff_max_ms),
            budget_ratio=read(f"{p}RETRY_BUDGET_RATIO", ratio, r.budget_ratio),
            budget_min_retries=read(f"{p}RETRY_BUDGET_MIN", non_negative_int, r.budget_min_retries),
            budget_window_s=read(f"{p}RETRY_BUDGET_WINDOW_S", positive_float, r.budget_window_s),
            min_attempt_ms=read(f"{p}RETRY_MIN_ATTEMPT_MS", positive_float, r.min_attempt_ms),
        ),
        breaker=BreakerSettings(
            window_s=read(f"{p}BREAKER_WINDOW_S", positive_float, b.window_s),
            min_calls=read(f"{p}BREAKER_MIN_CALLS", positive_int, b.min_calls),
            failure_rate=read(f"{p}BREAKER_FAILURE_RATE", ratio, b.failure_rate),
            reset_timeout_s=read(f"{p}BREAKER_RESET_S", positive_float, b.reset_timeout_s),
        ),
        outlier=OutlierSettings(
            consecutive_failures=read(f"{p}EJECT_AFTER", positive_int, o.consecutive_failures),
            base_ejection_s=read(f"{p}EJECT_BASE_S", positive_float, o.base_ejection_s),
            max_ejection_s=read(f"{p}EJECT_MAX_S", positive_float, o.max_ejection_s),
        ),
    )


_DEFAULT = DownstreamSettings(name="", urls=())


def _urls(raw: str) -> tuple[URL, ...]:
    return tuple(URL(http_url(part.strip())) for part in raw.split(","))
