"""The live status page of the admin listener: `GET /status` (HTML) and `GET /status.json`.

One snapshot per worker, built by `worker_snapshot` from what the worker holds; read-only
(it never changes a breaker, a limit or a counter). The page (bff/admin/static/) fetches
`/status.json` twice a second and redraws. The shape, which the page reads and nothing else:

    {"generated_at": <epoch s>,
     "workers": [{"pid", "uptime_s",
                  "admission": {"state": "serving"|"shedding", "in_flight", "queue_delay_ms",
                                "loop_lag_ms", "refused": {"<reason>": n}},
                  "services": {"<name>": {"breaker": "closed"|"open"|"half-open", "calls",
                               "success_rate": 0-1 | null,
                               "latency_ms": {"p50", "p90", "p99"} | null,
                               "retries", "hedges", "in_flight",
                               "cache": {"hits", "misses", "stale"}}}}]}

Where each figure comes from (this worker only; "workers" holds this one worker):
- breaker, in_flight: the service's client; success_rate: the share of successes among the
  outcomes in the breaker's current window (what the breaker decides on; null when the window
  holds none, as while the breaker is open); latency_ms: nearest-rank percentiles of the last
  64 successful attempts (null before there are any).
- calls (requests sent), retries, hedges (sent, whatever became of them), cache and refused:
  this process's Prometheus counters since start. cache hits are copies served without
  waiting for a call (fresh, or stale while revalidating), misses are lookups that had to call
  (no copy, or an expired one), stale are copies served because the live call failed
  (stale-if-error).
- admission: `shedding` while the worker has no room under its concurrency limit (the next
  request would be refused); queue_delay_ms is how long this very request waited in the
  worker's loop between its bytes arriving and its handler running (the admin listener shares
  the loop, so that is what any request waits now); loop_lag_ms how late the loop runs its
  timers.
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY

from bff.clients.base import DownstreamClient
from bff.keys import CLIENTS, EDGE

__all__ = ["PUBLIC_APP", "RECEIVED_AT", "STARTED_AT", "setup_status_routes", "worker_snapshot"]

# The worker's public app, whose clients and edge the snapshot reads.
PUBLIC_APP = web.AppKey("public_app", web.Application)
STARTED_AT = web.AppKey("started_at", float)  # time.monotonic() when the worker was built
# perf_counter() when the request's bytes arrived (bff.edge.arrival), taken by the admin
# middleware for every request.
RECEIVED_AT = web.RequestKey("received_at", float)
STATIC_DIR = Path(__file__).with_name("static")
# Nothing from another origin; the page's script and style are files of this listener.
CSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"

# Counter families read per snapshot (prometheus_client drops `_total` from a family's name).
_COUNTED = (
    "bff_downstream_attempts",
    "bff_downstream_retries",
    "bff_downstream_hedges",
    "bff_cache_lookups",
    "bff_edge_rejections",
)
_CACHE_RESULTS = {"hit": "hits", "stale": "hits", "miss": "misses", "expired": "misses"}
_CACHE_RESULTS["stale_if_error"] = "stale"


def _counters() -> dict[str, dict[tuple[str, str], float]]:
    """{family: {(service or reason, result or ""): value}} of this process's counters."""
    found: dict[str, dict[tuple[str, str], float]] = {name: {} for name in _COUNTED}
    for family in REGISTRY.collect():
        if family.name not in found:
            continue
        values = found[family.name]
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = sample.labels
                first = labels.get("service", labels.get("reason", ""))
                key = (first, labels.get("outcome", labels.get("result", "")))
                values[key] = values.get(key, 0.0) + sample.value
    return found


def _by_first(values: dict[tuple[str, str], float]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for (first, _), value in values.items():
        totals[first] += int(value)
    return totals


def _percentiles(samples: tuple[float, ...]) -> dict[str, float] | None:
    if not samples:
        return None
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 1)

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99)}


def _service(
    client: DownstreamClient, counted: dict[str, dict[tuple[str, str], float]]
) -> dict[str, Any]:
    name = client.name
    ok, failed = client.breaker.counts
    cache = {"hits": 0, "misses": 0, "stale": 0}
    for (service, result), value in counted["bff_cache_lookups"].items():
        if service == name and result in _CACHE_RESULTS:
            cache[_CACHE_RESULTS[result]] += int(value)
    return {
        "breaker": client.breaker.state,
        "calls": _by_first(counted["bff_downstream_attempts"]).get(name, 0),
        "success_rate": round(ok / (ok + failed), 4) if ok + failed else None,
        "latency_ms": _percentiles(client.latency.recent()),
        "retries": _by_first(counted["bff_downstream_retries"]).get(name, 0),
        "hedges": _by_first(counted["bff_downstream_hedges"]).get(name, 0),
        "in_flight": client.in_flight,
        "cache": cache,
    }


def worker_snapshot(request: web.Request) -> dict[str, Any]:
    """This worker's figures, as one entry of `workers` (read-only)."""
    queued_s = max(0.0, time.perf_counter() - request[RECEIVED_AT])
    public = request.app[PUBLIC_APP]
    clients = public.get(CLIENTS, {})  # absent until the worker has started
    edge = public[EDGE]
    counted = _counters()
    loop_lag = next((c.loop_lag for c in clients.values() if c.loop_lag is not None), None)
    room = edge.in_flight < int(edge.concurrency.limit)
    return {
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - request.app[STARTED_AT], 1),
        "admission": {
            "state": "serving" if room else "shedding",
            "in_flight": edge.in_flight,
            "queue_delay_ms": round(queued_s * 1000, 2),
            "loop_lag_ms": round(loop_lag.lag * 1000, 2) if loop_lag is not None else 0.0,
            "refused": _by_first(counted["bff_edge_rejections"]),
        },
        "services": {name: _service(client, counted) for name, client in clients.items()},
    }


async def status_json(request: web.Request) -> web.Response:
    body = {"generated_at": round(time.time(), 3), "workers": [worker_snapshot(request)]}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def status_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC_DIR / "status.html",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"},
    )


def setup_status_routes(app: web.Application, public: web.Application) -> None:
    """`/status`, `/status.json` and the page's script and style, for `public`'s worker."""
    app[PUBLIC_APP] = public
    app[STARTED_AT] = time.monotonic()
    app.router.add_get("/status", status_page, name="status")
    app.router.add_get("/status.json", status_json, name="status_json")
    app.router.add_static("/static/", STATIC_DIR)
