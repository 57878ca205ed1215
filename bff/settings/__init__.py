"""Settings as frozen data, read from the environment in exactly one place.

`Settings.from_env(environ)` is the only function that looks at environment variables; tests
pass a plain dict, or build the dataclasses directly (`dataclasses.replace`) for a figure that
is not a variable. The public variables are declared once (`environment.py`, the table in
docs/configuration.md); every other figure is a default here, with its reason. An invalid value
stops start-up with a `SettingsError` that names the variable.

    Settings                 server, deadline, logging              (this module)
    ├── DownstreamSettings   x3: URLs, timeout; retry, breaker...   (downstream.py)
    ├── TracingSettings      on or off; the SDK reads OTEL_*        (tracing.py)
    ├── EdgeSettings         rate limit, CORS, auth, limits, drain  (edge.py)
    └── CacheSettings        part cache, Redis tier, compression    (cache.py)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from msgspec import UNSET

from bff.settings.cache import CacheSettings, cache_from
from bff.settings.downstream import (
    BreakerSettings,
    DownstreamSettings,
    OutlierSettings,
    RetrySettings,
    downstream_from,
)
from bff.settings.edge import (
    AuthSettings,
    CorsSettings,
    EdgeSettings,
    IpNetwork,
    JwtAlgorithm,
    RateLimitSettings,
    RateLimitStrategy,
    edge_from,
)
from bff.settings.environment import SettingsError, given, read_environment, read_variable
from bff.settings.names import refuse_dangerous_names, unknown_names
from bff.settings.tracing import TracingSettings, tracing_from

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
    "read_variable",
    "unknown_names",
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
    # timer fires: a loopback round trip plus a scheduling slice is well under 5 ms.
    propagation_margin_ms: float = 5.0
    # The bulkheads (512 per service) are the real cap; the pool only needs room for all three.
    max_connections: int = 2048
    # Above this event-loop lag a timeout is blamed on this worker, not on the service: a
    # healthy loop lags under 1 ms, a saturated one tens of ms (make bench, 256 connections).
    loop_lag_neutral_ms: float = 20.0
    # Downstream URLs given by name are re-resolved this often (seconds; 0 = off, a name is one
    # instance that aiohttp resolves per connection):
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
        environ = os.environ if environ is None else environ
        refuse_dangerous_names(environ)
        env = read_environment(environ)
        redis_url = None if env.redis_url is UNSET else env.redis_url
        settings = cls(
            product=downstream_from(env, "product"),
            reviews=downstream_from(env, "reviews"),
            inventory=downstream_from(env, "inventory"),
            # Unlike the dataclass (1, for tests and embedding), the command uses every core.
            workers=os.cpu_count() or 1 if env.workers is UNSET else env.workers,
            log_format=("console" if tty else "json")
            if env.log_format is UNSET
            else env.log_format,
            tracing=tracing_from(environ),
            metrics_dir=environ.get("PROMETHEUS_MULTIPROC_DIR") or None,
            redis_url=redis_url,
            edge=edge_from(env, redis_url),
            cache=cache_from(env),
            **given(
                host=env.host,
                port=env.port,
                admin_port=env.admin_port,
                deadline_ms=env.deadline_ms,
                log_level=env.log_level,
                shutdown_grace_s=env.shutdown_grace_s,
                dns_refresh_s=env.dns_refresh_s,
            ),
        )
        if settings.admin_port == settings.port != 0:
            raise SettingsError("BFF_ADMIN_PORT must differ from BFF_PORT")
        if settings.edge.drain_delay_s >= settings.shutdown_grace_s:
            raise SettingsError("BFF_DRAIN_DELAY_S must be shorter than BFF_SHUTDOWN_GRACE_S")
        return settings
