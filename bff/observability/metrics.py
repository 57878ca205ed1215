"""Prometheus metrics: defined once at import, label children cached, served at `/metrics`.

    bff_request_duration_seconds      histogram  route, method, status
    bff_in_flight_requests            gauge      (sum over live workers)
    bff_downstream_duration_seconds   histogram  service, outcome   one per call, retries included
    bff_downstream_attempts_total     counter    service, outcome   requests actually sent
    bff_downstream_retries_total      counter    service            retries scheduled
    bff_breaker_state                 gauge      service            0 closed, 1 half-open, 2 open
                                                                    (max over live workers)
    bff_degraded_total                counter    part, reason       answers with that part missing
    bff_cache_lookups_total           counter    service, result    hit, miss, stale, revalidated,
                                                                    coalesced, stale_if_error
    bff_cache_stored_bytes            gauge                         memory tier (sum over workers)
    bff_cache_redis_errors_total      counter    op                 get, set, del: each one a miss
    bff_http_parse_errors_total       counter    reason             requests the HTTP parser refused
    bff_edge_rejections_total         counter    reason             shed (over the concurrency
                                                                    limit), queued (deadline spent
                                                                    queueing), rate_limited
    bff_outlier_ejections_total       counter    service            instances ejected from a pool
    bff_downstream_instances          gauge      service            instances in the pool
    bff_retry_budget_exhausted_total  counter    service            retries refused by the budget
    bff_bulkhead_occupancy            gauge      service            busiest worker's peak calls in
                                                                    flight / its bulkhead, last 10 s
    bff_event_loop_lag_seconds        histogram                     how late each 50 ms tick woke
    bff_process_*, bff_build_info                                 bff.observability.sampler
    bff_concurrency_limit             gauge                         adaptive limit (sum, workers)
    bff_downstream_hedges_total       counter    service, outcome   hedges sent: won, lost, failed
    bff_downstream_hedges_skipped_total
                                      counter    service, reason    hedges due, not sent: deadline,
                                                                    failing, loop_lag, budget,
                                                                    breaker

Several workers: prometheus_client's multiprocess mode. The supervisor points
PROMETHEUS_MULTIPROC_DIR at a clean directory *before* the workers start (the library picks
its storage at import), each worker writes its own files, and a scrape answered by any worker
adds up all of them. `.labels()` costs a lock and a dict lookup per call, so the hot path goes
through `_Children`, which keeps one child per label tuple.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import tempfile
from typing import Generic, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Dense around the 500 ms budget (deadline answers land at ~0.5 s), sparse past it.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1, 2.5)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}

M = TypeVar("M", Counter, Gauge, Histogram)


class _Children(Generic[M]):
    __slots__ = ("_children", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        return child


_REQUEST_DURATION = Histogram(
    "bff_request_duration_seconds",
    "Time from request to response, per route template.",
    ("route", "method", "status"),
    buckets=BUCKETS,
)
IN_FLIGHT = Gauge("bff_in_flight_requests", "Requests being served.", multiprocess_mode="livesum")
_DOWNSTREAM_DURATION = Histogram(
    "bff_downstream_duration_seconds",
    "Duration of one downstream call (all its attempts), by final outcome.",
    ("service", "outcome"),
    buckets=BUCKETS,
)
_ATTEMPTS = Counter(
    "bff_downstream_attempts_total",
    "Requests sent to a downstream service, by the attempt's outcome.",
    ("service", "outcome"),
)
_RETRIES = Counter(
    "bff_downstream_retries_total", "Retries scheduled after a failed attempt.", ("service",)
)
_BREAKER = Gauge(
    "bff_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    ("service",),
    multiprocess_mode="livemax",
)
_DEGRADED = Counter(
    "bff_degraded_total", "Answers sent without an optional part, by reason.", ("part", "reason")
)

_CACHE_LOOKUPS = Counter(
    "bff_cache_lookups_total",
    "Part cache decisions, by service and result.",
    ("service", "result"),
)
CACHE_STORED_BYTES = Gauge(
    "bff_cache_stored_bytes",
    "Bytes held by the part cache's memory tier.",
    multiprocess_mode="livesum",
)
_CACHE_REDIS_ERRORS = Counter(
    "bff_cache_redis_errors_total",
    "Redis operations of the part cache that failed or timed out (each one a miss).",
    ("op",),
)
_PARSE_ERRORS = Counter(
    "bff_http_parse_errors_total",
    "Requests refused with 400 by the HTTP parser, before any handler.",
    ("reason",),
)

_EDGE_REJECTIONS = Counter(
    "bff_edge_rejections_total",
    "Requests refused at the edge before any downstream call: shed (over the concurrency "
    "limit), queued (their deadline went by while queued) or rate_limited.",
    ("reason",),
)
_EJECTIONS = Counter(
    "bff_outlier_ejections_total",
    "Instances ejected from a service's pool after consecutive failures.",
    ("service",),
)
_INSTANCES = Gauge(
    "bff_downstream_instances",
    "Instances in a service's pool (one per address its name resolves to).",
    ("service",),
    multiprocess_mode="livemax",
)
_BUDGET_EXHAUSTED = Counter(
    "bff_retry_budget_exhausted_total",
    "Retries that were due but refused because the service's retry budget was spent.",
    ("service",),
)
_BULKHEAD = Gauge(
    "bff_bulkhead_occupancy",
    "Peak calls in flight over the last 10 s as a fraction of the bulkhead (1: calls refused);"
    " the busiest worker.",
    ("service",),
    multiprocess_mode="livemax",
)
LOOP_LAG = Histogram(
    "bff_event_loop_lag_seconds",
    "How late the event loop ran a 50 ms timer, per tick.",
    buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CONCURRENCY_LIMIT = Gauge(
    "bff_concurrency_limit",
    "The adaptive concurrency limit: requests a worker serves at once before refusing.",
    multiprocess_mode="livesum",
)
_HEDGES = Counter(
    "bff_downstream_hedges_total",
    "Hedged attempts sent, by outcome: won (its answer was used), lost (the first attempt "
    "answered first; the hedge was cancelled), failed.",
    ("service", "outcome"),
)

_HEDGES_SKIPPED = Counter(
    "bff_downstream_hedges_skipped_total",
    "Hedges that were due (the first request slower than the hedge delay) but not sent, by "
    "reason: deadline (no room left for an answer), failing (the service fails too often), "
    "loop_lag (our own loop runs late), budget (the hedge budget is spent), breaker (no permit).",
    ("service", "reason"),
)

request_duration = _Children(_REQUEST_DURATION)
downstream_duration = _Children(_DOWNSTREAM_DURATION)
attempts = _Children(_ATTEMPTS)
retries = _Children(_RETRIES)
breaker_state = _Children(_BREAKER)
degraded = _Children(_DEGRADED)
cache_lookups = _Children(_CACHE_LOOKUPS)
cache_redis_errors = _Children(_CACHE_REDIS_ERRORS)
parse_errors = _Children(_PARSE_ERRORS)
edge_rejections = _Children(_EDGE_REJECTIONS)
EDGE_REJECTION_REASONS = ("shed", "queued", "rate_limited")
ejections = _Children(_EJECTIONS)
instances = _Children(_INSTANCES)
budget_exhausted = _Children(_BUDGET_EXHAUSTED)
bulkhead_occupancy = _Children(_BULKHEAD)
hedges = _Children(_HEDGES)
hedges_skipped = _Children(_HEDGES_SKIPPED)


def set_breaker_state(service: str, state: str) -> None:
    breaker_state(service).set(BREAKER_STATES.get(state, 2))


async def render(multiprocess_dir: str | None) -> bytes:
    if multiprocess_dir is None:
        return generate_latest(REGISTRY)
    # Reads one file per worker and metric kind: off the loop.
    return await asyncio.to_thread(_render_multiprocess, multiprocess_dir)


def _render_multiprocess(path: str) -> bytes:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


# -- for the supervisor of several workers ----------------------------------------------------


def prepare_multiprocess_dir(path: str | None) -> tuple[str, bool]:
    """A clean directory for the workers' files, exported to them through the environment.

    Returns (path, whether we created it). Files from an earlier run would add old counts to
    ours, so a given directory is emptied of them first.
    """
    created = path is None
    if path is None:
        path = tempfile.mkdtemp(prefix="bff-metrics-")
    else:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path, created


def worker_exited(pid: int | None, path: str) -> None:
    """Drop a dead worker's live gauges (its counters stay: what it counted did happen)."""
    if pid is not None:
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def remove_multiprocess_dir(path: str, created: bool) -> None:
    if created:
        shutil.rmtree(path, ignore_errors=True)
