"""The live status page of the admin listener: `GET /status` (HTML) and `GET /status.json`.

One snapshot per worker, built by `worker_snapshot` from what the worker holds; read-only
(it never changes a breaker, a limit or a counter). The page (bff/admin/static/) fetches
`/status.json` twice a second and redraws. The shape, which the page reads and nothing else:

    {"generated_at": <epoch s>,
     "workers": [{"pid", "uptime_s",
                  "admission": {"state": "serving"|"shedding", "in_flight", "limit",
                                "waiting", "reserve_ms", "queue_delay_ms", "loop_lag_ms",
                                "target_ms",
                                "refused": {"<reason>": n}, "client_gone"},
                  "services": {"<name>": {"breaker": "closed"|"open"|"half-open", "calls",
                               "success_rate": 0-1 | null,
                               "latency_ms": {"p50", "p90", "p99"} | null,
                               "retries", "hedges", "in_flight",
                               "cache": {"hits", "misses", "stale"}}}}]}

Where each figure comes from, all counted by the objects that own it since the worker
started: breaker, in_flight, calls (requests sent), retries, hedges (sent, whatever became of
them): the service's client; success_rate: the share of successes among the outcomes in the
breaker's current window (what the breaker decides on; null when it holds none, as while the
breaker is open); latency_ms: the recent successful attempts (null before there are any);
cache: the part cache's lookups (hits are copies served without waiting for a call, fresh or
stale while revalidating; misses had to call; stale are copies served because the live call
failed); admission: bff.edge.admission (`shedding` while the worker's loop runs later than
admission's target; reserve_ms: what a waiting miss needs left of its deadline to start;
client_gone: waiting misses dropped because their client had gone away).

Several workers: each writes its snapshot to the workers' shared directory (the one the
metrics use) four times a second; whichever worker answers `/status.json` adds the others'
from there, so the page shows every worker, each a quarter of a second old at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from bff.client import DownstreamClient
from bff.keys import ADMISSION, CLIENTS, PART_CACHE, SETTINGS
from bff.lifecycle import in_background

__all__ = ["PUBLIC_APP", "publishing", "setup_status_routes", "worker_snapshot"]

# The worker's public app, whose clients, cache and admission the snapshot reads.
PUBLIC_APP = web.AppKey("public_app", web.Application)
STATIC_DIR = Path(__file__).with_name("static")
# Nothing from another origin; the page's script and style are files of this listener.
CSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"
PUBLISH_PERIOD_S = 0.25
# A snapshot file older than this belongs to a worker that is gone (or stuck): not shown.
STALE_AFTER_S = 3.0
_PREFIX = "status-"
_CACHE_RESULTS = {"hit": "hits", "stale": "hits", "miss": "misses", "expired": "misses"}
_CACHE_RESULTS["stale_if_error"] = "stale"
_STARTED = time.monotonic()


def _service(client: DownstreamClient, lookups: Mapping[tuple[str, str], int]) -> dict[str, Any]:
    name = client.name
    ok, failed = client.breaker.counts
    cache = {"hits": 0, "misses": 0, "stale": 0}
    for (service, result), count in list(lookups.items()):
        if service == name and result in _CACHE_RESULTS:
            cache[_CACHE_RESULTS[result]] += count
    return {
        "breaker": client.breaker.state,
        "calls": sum(client.attempts.values()),
        "success_rate": round(ok / (ok + failed), 4) if ok + failed else None,
        "latency_ms": client.latency.percentiles(),
        "retries": client.retries,
        "hedges": sum(client.hedges.values()),
        "in_flight": client.in_flight,
        "cache": cache,
    }


def worker_snapshot(public: web.Application) -> dict[str, Any]:
    """This worker's figures, as one entry of `workers` (read-only)."""
    clients: Mapping[str, DownstreamClient] = public.get(CLIENTS, {})  # none before start
    cache = public.get(PART_CACHE)
    lookups = cache.lookups if cache is not None else {}
    return {
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - _STARTED, 1),
        "admission": public[ADMISSION].status(),
        "services": {name: _service(client, lookups) for name, client in clients.items()},
    }


def _siblings(directory: str, now: float) -> list[dict[str, Any]]:
    """The other workers' last snapshots (this worker's own is live)."""
    found = []
    for path in Path(directory).glob(f"{_PREFIX}*.json"):
        if path.name == f"{_PREFIX}{os.getpid()}.json":
            continue
        with contextlib.suppress(OSError, ValueError):
            if now - path.stat().st_mtime > STALE_AFTER_S:
                continue
            found.append(json.loads(path.read_bytes()))
    return sorted(found, key=lambda w: int(w.get("pid", 0)))


async def status_json(request: web.Request) -> web.Response:
    workers = [worker_snapshot(request.app[PUBLIC_APP])]
    directory = request.app[SETTINGS].metrics_dir
    if directory is not None:
        workers += _siblings(directory, time.time())
    body = {"generated_at": round(time.time(), 3), "workers": workers}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def status_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC_DIR / "status.html",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"},
    )


def setup_status_routes(app: web.Application, public: web.Application) -> None:
    """`/status`, `/status.json` and the page's script and style, for `public`'s worker."""
    app[PUBLIC_APP] = public
    app.router.add_get("/status", status_page, name="status")
    app.router.add_get("/status.json", status_json, name="status_json")
    app.router.add_static("/static/", STATIC_DIR)


@contextlib.asynccontextmanager
async def publishing(public: web.Application, directory: str | None) -> AsyncIterator[None]:
    """While the block runs, write this worker's snapshot where its siblings read it (only
    with several workers: `directory` is their shared one); removed at the end."""
    if directory is None:
        yield
        return
    path = Path(directory) / f"{_PREFIX}{os.getpid()}.json"
    scratch = path.with_suffix(".tmp")

    async def run() -> None:
        while True:
            with contextlib.suppress(OSError):
                scratch.write_bytes(json.dumps(worker_snapshot(public)).encode())
                scratch.replace(path)  # whole files only: a reader never sees half a one
            await asyncio.sleep(PUBLISH_PERIOD_S)

    try:
        async with in_background(run(), "status-publish"):
            yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
