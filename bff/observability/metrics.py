"""Prometheus metrics: counted where they happen, written to the registry once a second.

    bff_request_duration_seconds      histogram  route, method, status
    bff_in_flight_requests            gauge      (sum over live workers)
    bff_downstream_duration_seconds   histogram  service, outcome   one per call, retries included
    bff_downstream_attempts_total     counter    service, outcome   requests actually sent
    bff_downstream_retries_total      counter    service            retries scheduled
    bff_breaker_state                 gauge      service            0 closed, 1 half-open, 2 open
                                                                    (max over live workers)
    bff_degraded_total                counter    part, reason       answers with that part missing
    bff_cache_lookups_total           counter    service, result    hit, miss, stale, expired,
                                                                    revalidated, coalesced,
                                                                    stale_if_error
    bff_cache_stored_bytes            gauge                         memory tier (sum over workers)
    bff_cache_redis_errors_total      counter    op                 get, set, del: each one a miss
    bff_http_parse_errors_total       counter    reason             requests the HTTP parser refused
    bff_edge_rejections_total         counter    reason             overloaded (a waiting miss whose
                                                                    deadline no longer holds its
                                                                    work), queued (deadline spent
                                                                    before the handler), in_flight
                                                                    (the fixed cap), rate_limited
    bff_concurrency_limit             gauge                         the most misses at work at once
                                                                    (admission's limit; sum)
    bff_admission_waiting             gauge                         misses waiting their turn (sum)
    bff_admission_shedding            gauge                         1 while a worker's loop runs
                                                                    late (max over live workers)
    bff_admission_queue_delay_seconds histogram                     wait before the handler ran
    bff_outlier_ejections_total       counter    service            instances ejected from a pool
    bff_downstream_instances          gauge      service            instances in the pool
    bff_retry_budget_exhausted_total  counter    service            retries refused by the budget
    bff_bulkhead_occupancy            gauge      service            busiest worker's peak calls in
                                                                    flight / its bulkhead, last 10 s
    bff_event_loop_lag_seconds        histogram                     how late each 10 ms tick woke
    bff_process_*, bff_build_info                                 bff.observability.sampler
    bff_downstream_hedges_total       counter    service, outcome   hedges sent: won, lost, failed
    bff_downstream_hedges_skipped_total
                                      counter    service, reason    hedges due, not sent: deadline,
                                                                    failing, loop_lag, budget,
                                                                    breaker

Counting costs a request next to nothing: the objects that own a figure keep it as a plain
number (a client its attempts, the cache its lookups, admission its refusals) and a request's
durations go into `RequestStats` in one call. `flush()` writes what changed into
prometheus_client's metrics, once a second, before every scrape and at exit. The library's
multiprocess mode writes an mmap'd file per update (13 per request, ~27 us, measured): batched
here, it writes once per series per second, and its files still add up every worker's figures
at a scrape, as they always did. Counts are cumulative on their owners and only their growth
is written, so nothing a crash loses can ever make a counter go down; what it loses is at most
the last second.

Several workers: prometheus_client's multiprocess mode. The supervisor points
PROMETHEUS_MULTIPROC_DIR at a clean directory *before* the workers start (the library picks
its storage at import), each worker writes its own files, and a scrape answered by any worker
adds up all of them (a second old at most for the others).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import glob
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Generic, Protocol, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from bff._compat import histogram_add
from bff.context import Report
from bff.lifecycle import in_background

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Dense around the 500 ms budget (deadline answers land at ~0.5 s), sparse past it.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1, 2.5)
QUEUE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}
FLUSH_PERIOD_S = 1.0

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
_IN_FLIGHT = Gauge("bff_in_flight_requests", "Requests being served.", multiprocess_mode="livesum")
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
_CACHE_STORED_BYTES = Gauge(
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
    "Requests refused at the edge before any downstream call: overloaded (the worker could "
    "not keep up), queued (their deadline went by while queued), in_flight (the fixed cap) "
    "or rate_limited.",
    ("reason",),
)
_SHEDDING = Gauge(
    "bff_admission_shedding",
    "1 while the worker's loop runs later than admission's target (it takes on less work and "
    "waiting misses may be refused), else 0.",
    multiprocess_mode="livemax",
)
_CONCURRENCY_LIMIT = Gauge(
    "bff_concurrency_limit",
    "Cache misses a worker works on at once; more wait their turn (sum over workers).",
    multiprocess_mode="livesum",
)
_WAITING = Gauge(
    "bff_admission_waiting",
    "Cache misses waiting for their turn (sum over workers).",
    multiprocess_mode="livesum",
)
_QUEUE_DELAY = Histogram(
    "bff_admission_queue_delay_seconds",
    "How long a request waited in the worker before its handler ran.",
    buckets=QUEUE_BUCKETS,
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
_LOOP_LAG = Histogram(
    "bff_event_loop_lag_seconds",
    "How late the event loop ran a 10 ms timer, per tick.",
    buckets=LAG_BUCKETS,
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

# Cold paths (a parse error, a Redis error) update these directly.
cache_redis_errors = _Children(_CACHE_REDIS_ERRORS)
parse_errors = _Children(_PARSE_ERRORS)
edge_rejections = _Children(_EDGE_REJECTIONS)
EDGE_REJECTION_REASONS = ("overloaded", "queued", "in_flight", "rate_limited")
bulkhead_occupancy = _Children(_BULKHEAD)
instances = _Children(_INSTANCES)
_breaker = _Children(_BREAKER)


def set_breaker_state(service: str, state: str) -> None:
    _breaker(service).set(BREAKER_STATES.get(state, 2))


# -- the hot path -----------------------------------------------------------------------------


class _Histogram:
    """Bucket counts and a sum per label tuple, cumulative: what one worker observed."""

    __slots__ = ("bounds", "values")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        # labels -> [count per bucket (the last one past every bound)..., sum]
        self.values: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0.0] * (len(self.bounds) + 2)
        row[bisect.bisect_left(self.bounds, value)] += 1
        row[-1] += value


class RequestStats:
    """What the requests of this worker took: filled by `record_request`, one call each."""

    __slots__ = ("degraded", "durations", "in_flight", "parts", "queue_delay")

    def __init__(self) -> None:
        self.durations = _Histogram(BUCKETS)
        self.parts = _Histogram(BUCKETS)
        self.queue_delay = _Histogram(QUEUE_BUCKETS)
        self.queue_delay.values[()] = [0.0] * (len(QUEUE_BUCKETS) + 2)
        self.degraded: defaultdict[tuple[str, ...], int] = defaultdict(int)
        self.in_flight = 0


REQUESTS = RequestStats()
LOOP_LAG = _Histogram(LAG_BUCKETS)


def record_request(route: str, method: str, status: int, report: Report, waited: float) -> None:
    """One request's figures: its duration, how long it waited before its handler, each
    part's duration, each degraded part (no I/O here)."""
    stats = REQUESTS
    queue = stats.queue_delay.values[()]
    queue[bisect.bisect_left(QUEUE_BUCKETS, waited)] += 1
    queue[-1] += waited
    bounds = BUCKETS
    row = stats.durations.values.get((route, method, str(status)))
    if row is None:
        row = stats.durations.values[(route, method, str(status))] = [0.0] * (len(bounds) + 2)
    row[bisect.bisect_left(bounds, report.total_s)] += 1
    row[-1] += report.total_s
    parts = stats.parts.values
    for part in report.parts:
        row = parts.get((part.service, part.outcome))
        if row is None:
            row = parts[(part.service, part.outcome)] = [0.0] * (len(bounds) + 2)
        row[bisect.bisect_left(bounds, part.duration_s)] += 1
        row[-1] += part.duration_s
    if report.degraded:
        for name, reason in report.degraded.items():
            stats.degraded[(name, reason)] += 1


class Source(Protocol):
    """Something that keeps figures of its own (a client, the cache, admission) and writes
    them into the registry when asked."""

    def write_metrics(self, out: Writer) -> None: ...


class Writer:
    """Turns cumulative figures into increments of prometheus_client's metrics: each call
    names a series and its current total; only the growth since the last flush is written."""

    __slots__ = ("_gauges", "_last", "source")

    def __init__(self) -> None:
        self._last: dict[tuple[object, ...], float] = {}
        self._gauges: dict[tuple[Gauge, tuple[str, ...]], float] = {}
        # Whose totals are being written: each source's growth is its own.
        self.source: object = None

    def counter(self, metric: Counter, labels: tuple[str, ...], total: float) -> None:
        """A series is made the first time it is named, at 0 if need be: a rate() of nothing
        is no line on a panel, a rate() of zero is a flat one."""
        key = (self.source, metric, labels)
        last = self._last.get(key)
        if last is None or total > last:
            child = metric.labels(*labels) if labels else metric
            if total > (last or 0.0):
                child.inc(total - (last or 0.0))
            self._last[key] = total

    def counters(self, metric: Counter, totals: Iterable[tuple[tuple[str, ...], float]]) -> None:
        for labels, total in totals:
            self.counter(metric, labels, total)

    def histogram(self, metric: Histogram, hist: _Histogram) -> None:
        """A histogram's growth, bucket by bucket and its sum, in one write each (the
        library observes one value at a time: `_compat.histogram_add` adds many)."""
        last = self._last
        for labels, row in list(hist.values.items()):
            child = None
            for i, total in enumerate(row):
                key = (self.source, metric, labels, i)
                grown = total - last.get(key, 0.0)
                if grown > 0:
                    if child is None:
                        child = metric.labels(*labels) if labels else metric
                    histogram_add(child, i, grown)
                    last[key] = total

    def gauge(self, metric: Gauge, labels: tuple[str, ...], value: float) -> None:
        """A gauge's value now; several sources naming one series add up (several apps in one
        process, as in tests; a worker has one of each)."""
        key = (metric, labels)
        self._gauges[key] = self._gauges.get(key, 0.0) + value

    def forget(self, source: object) -> None:
        """Drop what was kept of a source that is gone (a stopped app)."""
        for key in [k for k in self._last if k[0] is source]:
            del self._last[key]

    def set_gauges(self) -> None:
        for (metric, labels), value in self._gauges.items():
            (metric.labels(*labels) if labels else metric).set(value)
        self._gauges.clear()


_WRITER = Writer()
_SOURCES: list[Source] = []


def watch(source: Source) -> Callable[[], None]:
    """Flush `source` with the others from now on; returns the function that stops it."""
    _SOURCES.append(source)

    def forget() -> None:
        flush()
        with contextlib.suppress(ValueError):
            _SOURCES.remove(source)
        _WRITER.forget(source)

    return forget


def flush() -> None:
    """Write every figure that changed since the last flush into the registry."""
    out = _WRITER
    out.source = None
    out.histogram(_REQUEST_DURATION, REQUESTS.durations)
    out.histogram(_DOWNSTREAM_DURATION, REQUESTS.parts)
    out.histogram(_QUEUE_DELAY, REQUESTS.queue_delay)
    out.histogram(_LOOP_LAG, LOOP_LAG)
    out.counters(_DEGRADED, list(REQUESTS.degraded.items()))
    out.gauge(_IN_FLIGHT, (), REQUESTS.in_flight)
    for source in list(_SOURCES):
        out.source = source
        source.write_metrics(out)
    out.source = None
    out.set_gauges()


@contextlib.asynccontextmanager
async def flushing(period_s: float = FLUSH_PERIOD_S) -> AsyncIterator[None]:
    """Flush once a second while the block runs, and once more at its end."""

    async def run() -> None:
        while True:
            await asyncio.sleep(period_s)
            flush()

    try:
        async with in_background(run(), "metrics-flush"):
            yield
    finally:
        flush()


# Families the sources write (kept here, with their names, so there is one list of metrics).
ATTEMPTS = _ATTEMPTS
RETRIES = _RETRIES
HEDGES = _HEDGES
HEDGES_SKIPPED = _HEDGES_SKIPPED
BUDGET_EXHAUSTED = _BUDGET_EXHAUSTED
EJECTIONS = _EJECTIONS
CACHE_LOOKUPS = _CACHE_LOOKUPS
CACHE_STORED_BYTES = _CACHE_STORED_BYTES
EDGE_REJECTIONS = _EDGE_REJECTIONS
SHEDDING = _SHEDDING
CONCURRENCY_LIMIT = _CONCURRENCY_LIMIT
WAITING = _WAITING
IN_FLIGHT = _IN_FLIGHT


# -- exposition -------------------------------------------------------------------------------


async def render(multiprocess_dir: str | None) -> bytes:
    flush()
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
