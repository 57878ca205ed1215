"""Settings as frozen data, read from the environment in exactly one place.

`Settings.from_env(environ)` is the only function that looks at environment variables; tests
pass a plain dict, or build the dataclasses directly (`dataclasses.replace`) for a figure that
is not a variable. Each variable is declared once, on the field it sets (`declaration.py`):
name, kind (type, bounds, unit), default and doc line. Reading, the table in
docs/configuration.md, `--print-config` and the list of names an operator may set are all
derived from those declarations. Times are kept in seconds, whatever unit their variable is
written in. The rules across several settings are in `checks.py`, and every `Settings` made
keeps them. Every bad value is reported at once, each naming its variable.

    Settings                 server, deadline, logging              (this module)
    ├── DownstreamSettings   one per part: URLs, timeout; retry...  (downstream.py)
    ├── TracingSettings      on or off; the SDK reads OTEL_*        (tracing.py)
    ├── EdgeSettings         rate limit, CORS, auth, limits, drain  (edge.py)
    └── CacheSettings        part cache, Redis tier, compression    (cache.py)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bff.settings.addresses import Url
from bff.settings.cache import CacheSettings
from bff.settings.checks import check
from bff.settings.declaration import (
    Computed,
    Context,
    Service,
    build,
    entries,
    per_service,
    setting,
)
from bff.settings.downstream import (
    BreakerSettings,
    DownstreamSettings,
    HedgeSettings,
    OutlierSettings,
    RetrySettings,
)
from bff.settings.edge import (
    AuthSettings,
    CorsSettings,
    EdgeSettings,
    IpNetwork,
    JwtAlgorithm,
    RateLimitSettings,
    RateLimitStrategy,
)
from bff.settings.environment import SettingsError, read, refusal
from bff.settings.kinds import (
    DURATION_MS,
    DURATION_S,
    PORT,
    SECONDS,
    Choice,
    Integer,
    Number,
    Refused,
    Text,
)
from bff.settings.names import dangerous_names
from bff.settings.names import unknown_names as _unknown_names
from bff.settings.tracing import TracingSettings, tracing_from

__all__ = [
    "AuthSettings",
    "BreakerSettings",
    "CacheSettings",
    "CorsSettings",
    "DownstreamSettings",
    "EdgeSettings",
    "HedgeSettings",
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
    "part_services",
    "read_variable",
    "unknown_names",
    "variables",
]

LogFormat = Literal["json", "console"]


def _every_core(_: Context) -> int:
    return os.cpu_count() or 1


def _console_on_a_terminal(values: Context) -> LogFormat:
    return "console" if values.tty else "json"


@dataclass(frozen=True, slots=True)
class Settings:
    # One per part of the answer (bff.parts.PARTS), in the parts' order.
    downstreams: tuple[DownstreamSettings, ...] = per_service(DownstreamSettings)
    # Each address of a name is an instance of its own, as a headless Service lists its pods.
    dns_refresh_s: float = setting(
        "BFF_DNS_REFRESH_S",
        DURATION_S,
        "re-resolve the services' host names this often (a headless Service: one instance per"
        " pod); `0`: off, a name is one instance",
        default=10.0,
    )
    deadline_s: float = setting(
        "BFF_DEADLINE_MS",
        DURATION_MS,
        "the per-request deadline; a client's `X-Request-Timeout-Ms` can only shorten it",
        default=0.5,
    )
    host: str = setting(
        "BFF_HOST",
        Text("a host name or address", 253),
        "address to listen on (`0.0.0.0` to be reachable from outside)",
        default="127.0.0.1",
    )
    port: int = setting("BFF_PORT", PORT, "public port; `0` = any free port", default=8080)
    # Operators' endpoints listen here, never on the public port.
    admin_port: int = setting(
        "BFF_ADMIN_PORT",
        PORT,
        "port of `/healthz`, `/readyz`, `/metrics`; `0` = any free port",
        default=9090,
    )
    # 1 for tests and embedding; the command uses every core.
    workers: int = setting(
        "BFF_WORKERS",
        Integer(1, 1024),
        "worker processes sharing the port (SO_REUSEPORT); in a container, the CPUs of the limit",
        default=1,
        computed=Computed("CPU count", _every_core),
    )
    log_level: str = setting(
        "BFF_LOG_LEVEL",
        Choice(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
        "the least severe record logged (any case)",
        default="INFO",
    )
    log_format: LogFormat = setting(
        "BFF_LOG_FORMAT",
        Choice(("json", "console")),
        "one JSON object per line, or lines for a person",
        default="json",
        computed=Computed("`json` (`console` on a terminal)", _console_on_a_terminal),
    )
    # Shared state across workers and instances: the rate limit's storage and the part
    # cache's second tier.
    redis_url: str | None = setting(
        "BFF_REDIS_URL",
        Url("redis[s]://[user:password@]host:port[/db]", ("redis", "rediss"), redis=True),
        "state shared by every worker and instance (rate limits, the cache's second tier)",
        default=None,
    )
    cache: CacheSettings = field(default_factory=CacheSettings)
    edge: EdgeSettings = field(default_factory=EdgeSettings)
    shutdown_grace_s: float = setting(
        "BFF_SHUTDOWN_GRACE_S",
        Number(SECONDS, 0, 3_600, low_open=True),
        "the whole stop, drain included (below the orchestrator's grace period)",
        default=10.0,
    )
    # Kept back from every propagated budget so a downstream's own 504 reaches us before our
    # timer fires: a loopback round trip plus a scheduling slice is well under 5 ms.
    propagation_margin_s: float = 0.005
    # The bulkheads (half the edge's cap per service) are the real cap; the pool only needs
    # room for all three.
    max_connections: int = 2048
    # Above this event-loop lag a timeout is blamed on this worker, not on the service: a
    # healthy loop lags under 1 ms, a saturated one tens of ms (make bench, 256 connections).
    loop_lag_neutral_s: float = 0.020
    tracing: TracingSettings = field(default_factory=TracingSettings)
    # prometheus_client's multiprocess directory (PROMETHEUS_MULTIPROC_DIR); the supervisor
    # makes one for its workers when several run and none is given.
    metrics_dir: str | None = None
    # Where each variable that was set came from (environment, command line): for
    # --print-config; a variable not named here has its default.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        check(self)

    def downstream(self, name: str) -> DownstreamSettings:
        """The settings of the service behind the part `name`."""
        for ds in self.downstreams:
            if ds.name == name:
                return ds
        raise SettingsError(f"no downstream settings for the part {name!r}")

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        flags: Mapping[str, str] | None = None,
        tty: bool = False,
        parts: Sequence[Service] | None = None,
    ) -> Settings:
        """`flags`: values from the command line by variable, winning over `environ`; `tty`:
        a person reads the output; `parts`: whose services to read (bff.parts.PARTS)."""
        environ = os.environ if environ is None else environ
        services = part_services(parts)
        problems = dangerous_names(environ, variables(services))
        try:
            reading = read(cls, environ, flags or {}, services, tty=tty)
            tracing = tracing_from(environ)
        except SettingsError as exc:
            raise SettingsError(*problems, *exc.problems) from exc
        if problems:
            raise SettingsError(*problems)
        settings: Settings = build(
            cls,
            reading.values,
            services,
            tracing=tracing,
            metrics_dir=environ.get("PROMETHEUS_MULTIPROC_DIR") or None,
            sources=reading.sources,
        )
        return settings


def part_services(parts: Sequence[Service] | None = None) -> Sequence[Service]:
    """`parts`, or the answer's parts (bff.parts.PARTS)."""
    if parts is not None:
        return parts
    # Imported on use: the parts belong to the request path (models, clients), which
    # imports these settings; at load time that would be a cycle waiting to happen.
    from bff.parts import PARTS

    return PARTS


def variables(parts: Sequence[Service] | None = None) -> tuple[str, ...]:
    """Every variable an operator may set, in the docs table's order."""
    return tuple(e.name for e in entries(Settings, part_services(parts)) if e.variable is not None)


def read_variable(name: str, raw: str) -> Any:
    """One variable's value, checked by its declaration (a command-line flag's value)."""
    for entry in entries(Settings, part_services(None)):
        if entry.variable is not None and entry.name == name:
            if not raw.strip():
                raise SettingsError(f"{name}: must not be empty")
            try:
                return entry.kind.parse(raw.strip())
            except Refused as exc:
                raise SettingsError(refusal(name, entry.kind, raw.strip(), exc)) from exc
    raise KeyError(name)


def unknown_names(environ: Mapping[str, str], parts: Sequence[Service] | None = None) -> list[str]:
    """One warning per `BFF_*` variable that is not a setting, for the start-up log."""
    services = part_services(parts)
    return _unknown_names(environ, variables(services), [s.name for s in services])
