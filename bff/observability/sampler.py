"""Metrics read off the worker rather than counted at a call site, once a second.

    bff_process_cpu_seconds           gauge      worker    CPU time of this worker
    bff_process_resident_memory_bytes gauge      worker    its resident memory
    bff_process_open_fds              gauge      worker    its open file descriptors
    bff_process_start_time_seconds    gauge      worker    when it started
    bff_build_info                    gauge      version, python, aiohttp   always 1
    bff_bulkhead_occupancy, bff_downstream_instances       (bff.observability.metrics)

prometheus_client's multiprocess mode drops its own `process_*` collectors (a scrape is
answered by one worker, which can only read its own /proc entry), so each worker copies what
that collector reads for itself into gauges, one series per worker *index* (`worker="0"`,
`"1"`, ...: the supervisor's numbering, see `worker_label`), in `livemostrecent` mode: a dead
worker's value goes with it, and its replacement carries on the same series. They were
labelled with the pid once (`liveall`): every restart started new series, which piled up in
Prometheus and broke every panel's line. With one worker (no multiprocess mode) the library's
`process_*` series are there too; dashboards use the `bff_process_*` ones, which exist either
way.

Bulkhead occupancy is a peak, not a sample: the client keeps the most calls it had in flight
since the last read, and the gauge shows the largest of the last ten one-second peaks, so a
scrape every 10 s still sees a burst that filled the bulkhead between two scrapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import multiprocessing
import platform
import re
from collections import deque
from collections.abc import AsyncIterator, Sequence

import aiohttp
from prometheus_client import Gauge
from prometheus_client.process_collector import ProcessCollector

from bff.client import DownstreamClient
from bff.observability import metrics
from bff.observability.logging import log

_PERIOD_S = 1.0
# Ten one-second peaks: at least one scrape interval (deploy/prometheus: 10 s).
_PEAKS_KEPT = 10

# The supervisor names its worker processes so (bff.supervisor); any other process is worker 0.
_WORKER_PROCESS = re.compile(r"bff-worker-(\d+)")


def worker_label() -> str:
    """This process's worker index, as the label of its series."""
    match = _WORKER_PROCESS.fullmatch(multiprocessing.current_process().name)
    return match[1] if match else "0"


def _per_worker(name: str, documentation: str) -> Gauge:
    return Gauge(name, documentation, ("worker",), multiprocess_mode="livemostrecent")


PROCESS_CPU = _per_worker(
    "bff_process_cpu_seconds", "CPU time (user + system) of this worker since it started."
)
PROCESS_RSS = _per_worker("bff_process_resident_memory_bytes", "Resident memory of this worker.")
PROCESS_FDS = _per_worker("bff_process_open_fds", "Open file descriptors of this worker.")
PROCESS_START = _per_worker(
    "bff_process_start_time_seconds", "Start time of this worker, seconds since the epoch."
)
_BUILD_INFO = Gauge(
    "bff_build_info",
    "Always 1; the labels say what runs.",
    ("version", "python", "aiohttp"),
    multiprocess_mode="livemax",
)
# prometheus_client's family name -> our gauge.
_PROCESS = {
    "process_cpu_seconds": PROCESS_CPU,
    "process_resident_memory_bytes": PROCESS_RSS,
    "process_open_fds": PROCESS_FDS,
    "process_start_time_seconds": PROCESS_START,
}


def set_build_info() -> None:
    try:
        version = importlib.metadata.version("product-details-bff")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        version = "unknown"
    _BUILD_INFO.labels(version, platform.python_version(), aiohttp.__version__).set(1)


class Sampler:
    """Reads this worker's process figures and its clients' peaks into the gauges."""

    def __init__(self, clients: Sequence[DownstreamClient]) -> None:
        self._clients = tuple(clients)
        # registry=None: read /proc/self on demand, never registered (no double export).
        self._process = ProcessCollector(registry=None)
        self._peaks = {c.name: deque[float](maxlen=_PEAKS_KEPT) for c in self._clients}
        self._worker = worker_label()

    def sample(self) -> None:
        for family in self._process.collect():
            gauge = _PROCESS.get(family.name)
            if gauge is not None and family.samples:
                gauge.labels(self._worker).set(family.samples[0].value)
        for c in self._clients:
            peaks = self._peaks[c.name]
            peaks.append(c.take_in_flight_peak() / c.settings.max_in_flight)
            metrics.bulkhead_occupancy(c.name).set(max(peaks))
            metrics.instances(c.name).set(len(c.pool.instances))


@contextlib.asynccontextmanager
async def sampling(clients: Sequence[DownstreamClient]) -> AsyncIterator[Sampler]:
    """Build info once, a first sample at once (a scrape right after start-up has every
    series), then one every second until the block ends."""
    set_build_info()
    # Zero series for what has not happened yet: a rate() of nothing is no line on a panel,
    # a rate() of zero is a flat one (the pools and budgets make theirs when they are built).
    for reason in metrics.EDGE_REJECTION_REASONS:
        metrics.edge_rejections(reason)
    sampler = Sampler(clients)
    sampler.sample()

    async def run() -> None:
        while True:
            await asyncio.sleep(_PERIOD_S)
            try:
                sampler.sample()
            except Exception as exc:  # a failed read (a /proc hiccup) skips one round only
                log.warning("metrics_sample_failed", error=repr(exc)[:200])

    task = asyncio.get_running_loop().create_task(run(), name="metrics-sampler")
    try:
        yield sampler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
