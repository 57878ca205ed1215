"""Settings as frozen data, read from the environment in exactly one place.

`Settings.from_env(environ)` is the only function that looks at environment variables; tests
pass a plain dict. Every timeout, retry, breaker and bulkhead figure lives here, none in code.
An invalid value stops start-up with a `SettingsError` that names the variable.

    Settings                 server, deadline, logging              (this module)
    ├── DownstreamSettings   x3: URLs, timeouts, retry, breaker...  (downstream.py)
    ├── TracingSettings      OTEL_*                                 (tracing.py)
    ├── EdgeSettings         rate limit, CORS, auth, limits, drain  (edge.py)
    └── CacheSettings        part cache, compression                (cache.py)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from bff.settings.cache import CacheSettings, read_cache
from bff.settings.downstream import (
    BreakerSettings,
    DownstreamSettings,
    OutlierSettings,
    RetrySettings,
    read_downstream,
)
from bff.settings.edge import (
    AuthSettings,
    CorsSettings,
    EdgeSettings,
    IpNetwork,
    JwtAlgorithm,
    RateLimitSettings,
    RateLimitStrategy,
    read_edge,
)
from bff.settings.parse import (
    Reader,
    SettingsError,
    non_negative_float,
    port,
    positive_float,
    positive_int,
    redis_url,
)
from bff.settings.tracing import TracingSettings, read_tracing

__all__ = [
    "AuthSettings",
    "BreakerSettings",
    "CacheSettings",
    "CorsSettings",
    "DownstreamSettings",
    "EdgeSettings",
    "IpNetwork",
    "JwtAlgorithm",
    "LogFormat",
    "OutlierSettings",
    "RateLimitSettings",
    "RateLimitStrategy",
    "RetrySettings",
    "Settings",
    "SettingsError",
    "TracingSettings",
]

LogFormat = Literal["json", "console"]


@dataclass(frozen=True, slots=True)
class Settings:
    product: DownstreamSettings
    reviews: DownstreamSettings
    inventory: DownstreamSettings
    host: str = "127.0.0.1"
    port: int = 8080
    # Operators' endpoints (/healthz, /readyz, /metrics) listen here, never on the public port.
    admin_port: int = 9090
    workers: int = 1
    deadline_ms: float = 500.0
    # Kept back from every propagated budget so a downstream's own 504 reaches us before our
    # timer fires (network and scheduling slack).
    propagation_margin_ms: float = 5.0
    max_connections: int = 2048
    # Above this event-loop lag a timeout is blamed on this worker, not on the service.
    loop_lag_neutral_ms: float = 20.0
    # Downstream URLs given by name are re-resolved this often (seconds; 0 = resolve never):
    # each address is an instance of its own, as a headless Service lists its pods.
    dns_refresh_s: float = 10.0
    log_level: str = "INFO"
    log_format: LogFormat = "json"
    shutdown_grace_s: float = 10.0
    tracing: TracingSettings = field(default_factory=TracingSettings)
    # prometheus_client's multiprocess directory (PROMETHEUS_MULTIPROC_DIR); the supervisor
    # makes one for its workers when several run and none is given.
    metrics_dir: str | None = None
    # Shared state across workers and instances (BFF_REDIS_URL): the rate limit's storage and
    # the part cache's second tier.
    redis_url: str | None = None
    edge: EdgeSettings = field(default_factory=EdgeSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    # Services of parts beyond the three (an app given more parts than bff.parts.PARTS).
    extra_downstreams: tuple[DownstreamSettings, ...] = ()

    @property
    def downstreams(self) -> tuple[DownstreamSettings, ...]:
        return (self.product, self.reviews, self.inventory, *self.extra_downstreams)

    def downstream(self, name: str) -> DownstreamSettings:
        """The settings of the service behind the part `name`."""
        for ds in self.downstreams:
            if ds.name == name:
                return ds
        raise SettingsError(f"no downstream settings for the part {name!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, tty: bool = False) -> Settings:
        env = os.environ if environ is None else environ
        read = Reader(env)
        d = _DEFAULTS
        shared = read("BFF_REDIS_URL", redis_url, d["redis_url"])
        settings = cls(
            product=read_downstream(read, "product"),
            reviews=read_downstream(read, "reviews"),
            inventory=read_downstream(read, "inventory"),
            host=read("BFF_HOST", str, d["host"]),
            port=read("BFF_PORT", port, d["port"]),
            admin_port=read("BFF_ADMIN_PORT", port, d["admin_port"]),
            # Unlike the dataclass (1, for tests and embedding), the command uses every core.
            workers=read("BFF_WORKERS", positive_int, os.cpu_count() or 1),
            deadline_ms=read("BFF_DEADLINE_MS", positive_float, d["deadline_ms"]),
            propagation_margin_ms=read(
                "BFF_PROPAGATION_MARGIN_MS", non_negative_float, d["propagation_margin_ms"]
            ),
            max_connections=read("BFF_MAX_CONNECTIONS", positive_int, d["max_connections"]),
            loop_lag_neutral_ms=read(
                "BFF_LOOP_LAG_NEUTRAL_MS", positive_float, d["loop_lag_neutral_ms"]
            ),
            dns_refresh_s=read("BFF_DNS_REFRESH_S", non_negative_float, d["dns_refresh_s"]),
            log_level=read("BFF_LOG_LEVEL", _log_level, d["log_level"]),
            log_format=read("BFF_LOG_FORMAT", _log_format, "console" if tty else "json"),
            shutdown_grace_s=read("BFF_SHUTDOWN_GRACE_S", positive_float, d["shutdown_grace_s"]),
            tracing=read_tracing(read),
            metrics_dir=read("PROMETHEUS_MULTIPROC_DIR", str, None),
            redis_url=shared,
            edge=read_edge(read, shared),
            cache=read_cache(read),
        )
        if settings.admin_port == settings.port != 0:
            raise SettingsError("BFF_ADMIN_PORT must differ from BFF_PORT")
        if settings.edge.drain_delay_s >= settings.shutdown_grace_s:
            raise SettingsError("BFF_DRAIN_DELAY_S must be shorter than BFF_SHUTDOWN_GRACE_S")
        return settings


# The dataclass's own defaults, so each is written once (the reader above falls back to them).
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Settings)}


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
