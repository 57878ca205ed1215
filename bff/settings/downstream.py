"""Per downstream service: its instances and per-attempt timeout (operators' settings), and
the retry, breaker, outlier and bulkhead figures (fixed values, each with its reason).

The variables are declared once for every part (`BFF_{SERVICE}_URL`: BFF_PRODUCT_URL, ...);
every service has the same fixed values, and a test builds others with `dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from yarl import URL

from bff.settings.addresses import Urls
from bff.settings.declaration import Service, setting
from bff.settings.edge import MAX_IN_FLIGHT
from bff.settings.kinds import DURATION_MS

__all__ = [
    "BreakerSettings",
    "DownstreamSettings",
    "HedgeSettings",
    "OutlierSettings",
    "RetrySettings",
]


@dataclass(frozen=True, slots=True)
class RetrySettings:
    # The first attempt and two retries: under the 500 ms deadline and a 300 ms attempt, a
    # third retry never fits anyway.
    max_attempts: int = 3
    # Full jitter in [0, min(max, base * 2^(n-1))]: small against the deadline, enough to
    # spread retries of one burst apart.
    backoff_base_s: float = 0.010
    backoff_max_s: float = 0.060
    # Finagle's retry budget: retries <= 20 % of first attempts (+3 per window), so a dead
    # service sees ~1.2x the calls, not 3x (make bench-resilience: 1.21 at 50 % errors).
    budget_ratio: float = 0.2
    budget_min_retries: int = 3
    budget_window_s: float = 10.0
    # Used as the latency floor until a service has answered often enough to measure it.
    min_attempt_s: float = 0.010


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Open when `failure_rate` of the calls in the last `window_s` failed, once there were at
    least `min_calls`. 0.8, not resilience4j's 0.5: the retry budget already caps what a
    failing service costs (1.2 calls per request), so the breaker is for a service that is
    down, and a service failing half its calls still completes most answers with retries."""

    window_s: float = 10.0
    min_calls: int = 20
    failure_rate: float = 0.8
    # One probe after 3 s: a restarted service is back in a few seconds (measured: complete
    # answers again 2.0 s after healing, make bench-resilience).
    reset_timeout_s: float = 3.0


@dataclass(frozen=True, slots=True)
class OutlierSettings:
    """Envoy's consecutive-failure ejection: 5 in a row, as Envoy's default; ejected for
    5 s doubling per repeated ejection, capped at a minute so an instance that healed is back
    soon (Envoy's 30 s / 300 s are for fleets far larger than three instances)."""

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
    min_delay_s: float = 0.010
    max_delay_s: float = 0.150


def _default_url(service: Service) -> str | None:
    return service.default_url


@dataclass(frozen=True, slots=True)
class DownstreamSettings:
    name: str  # the part's
    urls: tuple[URL, ...] = setting(
        "BFF_{SERVICE}_URL",
        Urls(),
        "the {service} service: its base URL, or one per instance",
        service_default=_default_url,
    )
    attempt_timeout_s: float = setting(
        "BFF_{SERVICE}_TIMEOUT_MS",
        DURATION_MS,
        "per-attempt timeout of the {service} service (cut to what is left of the deadline)",
        default=0.300,
    )
    # Bulkhead per worker: half the edge's in-flight cap, so one slow service cannot hold
    # every request of the worker.
    max_in_flight: int = MAX_IN_FLIGHT // 2
    # The largest real answer (a product's reviews) is a few KiB: 1 MiB is a broken service.
    max_body_bytes: int = 1024 * 1024
    retry: RetrySettings = field(default_factory=RetrySettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    outlier: OutlierSettings = field(default_factory=OutlierSettings)
    hedge: HedgeSettings = field(default_factory=HedgeSettings)
