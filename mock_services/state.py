"""The mutable state of one mock service: faults in force, their RNG, and request stats.

One `ServiceState` per application, stored under `SERVICE_STATE`; nothing here is global,
so several apps in one process (and in one test) never share faults or counters.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from aiohttp import web

from .faults import FaultSettings, Plan

__all__ = [
    "DEFAULT_CACHE_CONTROL",
    "DEFAULT_LATENCY_MS",
    "PLAN",
    "RECENT_LIMIT",
    "SERVICE_KINDS",
    "SERVICE_STATE",
    "RecentRequest",
    "ServiceKind",
    "ServiceState",
    "Stats",
]

ServiceKind = Literal["product", "reviews", "inventory"]
SERVICE_KINDS: tuple[ServiceKind, ...] = get_args(ServiceKind)

# The reference design's latencies (docs/contract.md §1), before `latency_scale`.
DEFAULT_LATENCY_MS: dict[ServiceKind, float] = {"product": 50.0, "reviews": 80.0, "inventory": 30.0}

# What a service sends by default: the product changes rarely, reviews now and
# then, stock all the time; all of them let a cache serve a copy while they are down.
DEFAULT_CACHE_CONTROL: dict[ServiceKind, str] = {
    "product": "max-age=60, stale-while-revalidate=30, stale-if-error=600",
    "reviews": "max-age=30, stale-while-revalidate=30, stale-if-error=600",
    "inventory": "max-age=2, stale-if-error=60",
}

RECENT_LIMIT = 200


@dataclass(slots=True)
class RecentRequest:
    """One arrival, as `GET /__stats` shows it under `recent`; completed when it is answered."""

    method: str
    path: str
    arrived_at: float
    headers: dict[str, str]
    status: int | str | None = None
    fault: str | None = None
    duration_ms: float | None = None  # None while it is being served

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "arrived_at": self.arrived_at,
            "headers": self.headers,
            "status": self.status,
            "fault": self.fault,
            "duration_ms": self.duration_ms,
        }


@dataclass(slots=True)
class Stats:
    """Counters since start or the last `DELETE /__stats`; `/__*` requests are not counted."""

    requests: int = 0
    budget_exceeded: int = 0
    recent: deque[RecentRequest] = field(default_factory=lambda: deque(maxlen=RECENT_LIMIT))

    def record_arrival(self, request: web.Request) -> RecentRequest:
        """Count a request and remember its arrival (time, path, every header)."""
        self.requests += 1
        # Lower-case names; a header sent several times is joined with ", " (RFC 9110 §5.3).
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        entry = RecentRequest(request.method, request.path, time.time(), headers)
        self.recent.append(entry)
        return entry

    def reset(self) -> None:
        self.requests = 0
        self.budget_exceeded = 0
        self.recent.clear()

    def to_json(self, recent: int = RECENT_LIMIT) -> dict[str, Any]:
        """The counters and the last `recent` arrivals, oldest first."""
        kept = list(self.recent)[-recent:] if recent > 0 else []
        return {
            "requests": self.requests,
            "budget_exceeded": self.budget_exceeded,
            "recent": [entry.to_json() for entry in kept],
        }


@dataclass(slots=True)
class ServiceState:
    """Faults in force (`latency_ms` and `cache_control` always resolved) and their RNG."""

    kind: ServiceKind
    default_latency_ms: float
    faults: FaultSettings = field(init=False)
    rng: random.Random = field(init=False)
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.restore_defaults()

    def install(self, settings: FaultSettings) -> None:
        """Replace the faults; the RNG restarts (from `seed` when there is one)."""
        self.faults = settings.with_defaults(
            self.default_latency_ms, DEFAULT_CACHE_CONTROL[self.kind]
        )
        self.rng = random.Random(settings.seed)

    def restore_defaults(self) -> None:
        self.install(FaultSettings())


SERVICE_STATE = web.AppKey("mock_service_state", ServiceState)
# The plan drawn for a request, for the middleware that logs and records its outcome.
PLAN = web.RequestKey("mock_service_plan", Plan)
