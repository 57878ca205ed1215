"""Running the BFF: one worker in this process, or N worker processes on one port.

Several workers share the port through SO_REUSEPORT: the kernel spreads connections across
their listening sockets, no process sits in the data path, and each worker is a plain
single-loop aiohttp server (uvloop when available). We chose it over gunicorn's aiohttp worker
because it needs no extra dependency or config file and keeps start-up, signals and the port-0
case (tests) in one small module. The supervisor reserves the port (bound, not listening, so it
never receives connections), starts the workers, forwards SIGTERM/SIGINT, restarts a worker
that crashes, and exits 0 once all workers stopped cleanly. It also gives the workers a clean
metrics directory (prometheus_client's multiprocess mode) so that `/metrics`, whichever worker
answers it, counts for all of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import multiprocessing
import os
import queue
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue

from aiohttp import web

from bff.app import create_app
from bff.edge.drain import drain
from bff.edge.server_limits import runner_options
from bff.keys import LIFECYCLE
from bff.observability import metrics
from bff.observability.logging import configure_logging, log
from bff.settings import Settings

_YOUNG_GC_THRESHOLD = 7000  # CPython's default is 700; see _settle_heap


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every POSIX platform
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log=None,  # our middleware writes one structured line per request
        handle_signals=False,
        **runner_options(settings),
    )


async def _serve(
    settings: Settings,
    *,
    reuse_port: bool,
    announce: bool,
    ready: Callable[[], None] | None = None,
    parent_pid: int | None = None,
) -> None:
    app = create_app(settings)
    runner = make_runner(app, settings)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port, backlog=2048)
    await site.start()
    _settle_heap()
    # The bound port (port 0 asks for any); `runner.addresses` works with uvloop's server too.
    port = runner.addresses[0][1] if runner.addresses else settings.port
    if announce:
        print(f"bff listening on http://{settings.host}:{port}", flush=True)
    log.info("worker_started", host=settings.host, port=port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # A supervised worker stops on the supervisor's SIGTERM only: Ctrl-C reaches the whole
    # process group, and a worker acting on it too would cut its own drain short.
    signals = (signal.SIGTERM,) if parent_pid is not None else (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready()
    orphan_watch = None
    if parent_pid is not None:
        orphan_watch = asyncio.create_task(_stop_when_orphaned(parent_pid, stop))
    await stop.wait()
    if orphan_watch is not None:
        orphan_watch.cancel()
    await drain(runner, app[LIFECYCLE], settings, stop)
    log.info("worker_stopped")


def _settle_heap() -> None:
    """Tune the cyclic GC for a long-running server, once the app is built (issue 5).

    Under load the GC took ~190 us of a worker's ~1 ms per request: every full collection
    (34 ms each, ~2 a second) rescanned the whole start-up heap (aiohttp, OTel, prometheus,
    structlog: objects that live as long as the process), and with the young generation's
    threshold of 700 the objects of in-flight requests were promoted, only to die later in
    the old generations and trigger those full collections. `gc.freeze()` takes the start-up
    heap out of the collector's sight; a young threshold of 7000 lets request objects die
    young. Measured with gc.callbacks: GC time per request ~190 -> ~45 us.
    """
    gc.collect()  # freeze what is alive, not start-up garbage
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(_YOUNG_GC_THRESHOLD, older, oldest)


async def _stop_when_orphaned(parent_pid: int, stop: asyncio.Event) -> None:
    """A worker whose supervisor died (SIGKILL, OOM) drains and exits instead of lingering."""
    while os.getppid() == parent_pid:  # noqa: ASYNC110 - no event exists for "parent died"
        await asyncio.sleep(0.5)
    log.warning("supervisor_gone", parent_pid=parent_pid)
    stop.set()


def serve_worker(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    _install_uvloop()
    asyncio.run(_serve(settings, reuse_port=False, announce=True))


def _worker_main(settings: Settings, started: Queue[int], index: int, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; SIGTERM stops us
    configure_logging(settings.log_level, settings.log_format)
    _install_uvloop()
    asyncio.run(
        _serve(
            settings,
            reuse_port=True,
            announce=False,
            ready=lambda: started.put(index),
            parent_pid=parent_pid,
        )
    )


def run(settings: Settings) -> int:
    if settings.workers == 1:
        serve_worker(settings)
        return 0
    return _supervise(settings)


def _supervise(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format)
    reservation = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reservation.bind((settings.host, settings.port))
    port = reservation.getsockname()[1]
    # Before the first worker starts: prometheus_client picks its storage at import.
    metrics_dir, created_dir = metrics.prepare_multiprocess_dir(settings.metrics_dir)
    worker_settings = dataclasses.replace(settings, port=port, workers=1, metrics_dir=metrics_dir)
    spawn = multiprocessing.get_context("spawn")
    started: Queue[int] = spawn.Queue()
    stopping = False

    def start(index: int) -> BaseProcess:
        proc = spawn.Process(
            target=_worker_main,
            args=(worker_settings, started, index, os.getpid()),
            name=f"bff-worker-{index}",
        )
        proc.start()
        return proc

    stop_deadline = float("inf")

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping, stop_deadline
        if not stopping:
            stop_deadline = time.monotonic() + settings.shutdown_grace_s + 5
        stopping = True
        for proc in workers:
            if proc.is_alive() and proc.pid is not None:
                proc.terminate()  # SIGTERM: each worker drains on its own

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workers = [start(i) for i in range(settings.workers)]
    # Announce the address only once every worker listens: a client that reads it can connect.
    for _ in workers:
        try:
            started.get(timeout=60)
        except queue.Empty:
            log.error("workers_did_not_start")
            on_signal(signal.SIGTERM, None)
            break
    print(
        f"bff listening on http://{settings.host}:{port} ({settings.workers} workers)",
        flush=True,
    )
    log.info("supervisor_started", port=port, workers=settings.workers)
    failures = 0
    while True:
        alive = [p for p in workers if p.is_alive()]
        if stopping and not alive:
            break
        if stopping and time.monotonic() > stop_deadline:
            for proc in alive:
                log.error("worker_killed_after_grace", pid=proc.pid)
                proc.kill()
        if not stopping:
            for i, proc in enumerate(workers):
                if not proc.is_alive():
                    failures += 1
                    log.error("worker_died", exitcode=proc.exitcode, restarts=failures)
                    metrics.worker_exited(proc.pid, metrics_dir)
                    time.sleep(min(5.0, 0.1 * failures))  # no tight crash loop
                    workers[i] = start(i)
        time.sleep(0.1)
    reservation.close()
    for proc in workers:
        metrics.worker_exited(proc.pid, metrics_dir)
    metrics.remove_multiprocess_dir(metrics_dir, created_dir)
    codes = [p.exitcode for p in workers]
    log.info("supervisor_stopped", exit_codes=codes)
    return 0 if all(c == 0 for c in codes) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(Settings.from_env()))
