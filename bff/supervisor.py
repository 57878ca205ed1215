"""The supervisor of N workers: reserve both addresses, start, watch, stop (bff.server).

A signal (SIGTERM, SIGINT, or SIGHUP: the terminal that started us was closed) sets a flag and
forwards SIGTERM at once to the workers that exist (each turns its /readyz to 503 and
drains); the loop does the rest, so a signal at any moment of start-up
(before the first worker exists, between two spawns, while waiting for them to listen) ends
the same way: every worker is sent SIGTERM, and the supervisor exits 0 once all are gone. A
worker killed by that SIGTERM before it could install its own handler (it was still
importing) has stopped as asked, and counts as a clean stop; so does one that a closed
terminal's SIGHUP, sent to the whole process group, reached before it could ignore it. SIGHUP
used to kill the supervisor at once, leaving its workers' metrics directory and three
multiprocessing semaphores behind. Workers that have not all
announced themselves within `START_TIMEOUT_S` stop the start with exit status 1; a worker
that cannot listen exits 2, and so does the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import queue
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue

from bff.listeners import Address, ListenError, Reservation, announce, reserve
from bff.observability import metrics
from bff.observability.logging import configure_logging, log
from bff.server import STOP_SIGNALS, install_uvloop, serve
from bff.settings import Settings

START_TIMEOUT_S = 60.0
_POLL_S = 0.05


def _worker_main(settings: Settings, started: Queue[int], index: int, parent_pid: int) -> None:
    # Ctrl-C and a closed terminal reach the whole process group: the supervisor decides, and
    # its SIGTERM stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    configure_logging(settings.log_level, settings.log_format)
    install_uvloop()
    try:
        asyncio.run(
            serve(
                settings,
                reuse_port=True,
                announce=False,
                ready=lambda: started.put(index),
                parent_pid=parent_pid,
            )
        )
    except ListenError as exc:
        log.error("worker_cannot_listen", error=str(exc))
        sys.exit(2)


class _Stop:
    """What the signal handler sets; read by the loop."""

    __slots__ = ("deadline", "requested", "signalled", "workers")

    def __init__(self) -> None:
        self.requested = False
        self.deadline = float("inf")
        self.workers: list[BaseProcess] = []
        self.signalled: set[int] = set()

    def forward(self) -> None:
        """SIGTERM to every worker alive (from the handler too: a drain starts at once), once
        each: a second SIGTERM would cut the worker's drain delay short."""
        for proc in list(self.workers):
            pid = proc.pid
            if pid is not None and pid not in self.signalled and proc.exitcode is None:
                self.signalled.add(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)


def supervise(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format)
    stop = _Stop()

    def on_signal(_signum: int, _frame: object) -> None:
        if not stop.requested:
            stop.deadline = time.monotonic() + settings.shutdown_grace_s + 5
        else:
            stop.signalled.clear()  # a second signal is passed on: it cuts the drain short
        stop.requested = True
        stop.forward()

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    reserved: list[Reservation] = []
    try:
        reserved.append(reserve(Address(settings.host, settings.port)))
        reserved.append(reserve(Address(settings.host, settings.admin_port)))
    except ListenError as exc:
        for reservation in reserved:
            reservation.close()
        print(f"python -m bff: {exc}", file=sys.stderr, flush=True)
        return 2
    public, admin = reserved
    try:
        return _run_workers(settings, stop, public.port, admin.port)
    finally:
        for reservation in reserved:
            reservation.close()


def _run_workers(settings: Settings, stop: _Stop, port: int, admin_port: int) -> int:
    # Before the first worker starts: prometheus_client picks its storage at import.
    metrics_dir, created_dir = metrics.prepare_multiprocess_dir(settings.metrics_dir)
    worker_settings = dataclasses.replace(
        settings, port=port, admin_port=admin_port, workers=1, metrics_dir=metrics_dir
    )
    spawn = multiprocessing.get_context("spawn")
    started: Queue[int] = spawn.Queue()
    workers = stop.workers

    def start(index: int) -> BaseProcess:
        proc = spawn.Process(
            target=_worker_main,
            args=(worker_settings, started, index, os.getpid()),
            # Its index in this name is the `worker` label of its process metrics
            # (bff.observability.sampler): a replacement carries on the same series.
            name=f"bff-worker-{index}",
        )
        proc.start()
        return proc

    for i in range(settings.workers):
        if stop.requested:
            break
        workers.append(start(i))
    status = _await_start(settings, stop, workers, started)
    if status is None:
        announce(settings.host, port, admin_port, f" ({settings.workers} workers)")
        log.info("supervisor_started", port=port, admin_port=admin_port, workers=len(workers))
        _watch(stop, workers, start, metrics_dir)
    _stop_all(stop, workers)
    for proc in workers:
        metrics.worker_exited(proc.pid, metrics_dir)
    metrics.remove_multiprocess_dir(metrics_dir, created_dir)
    codes = [p.exitcode for p in workers]
    log.info("supervisor_stopped", exit_codes=codes)
    if status is not None:
        return status
    return 0 if all(_clean(c) for c in codes) else 1


def _await_start(
    settings: Settings, stop: _Stop, workers: list[BaseProcess], started: Queue[int]
) -> int | None:
    """None once every worker listens; the exit status when the start failed; 0 when a
    signal stopped it."""
    waiting = set(range(len(workers)))
    give_up = time.monotonic() + START_TIMEOUT_S
    while waiting:
        with contextlib.suppress(queue.Empty):
            waiting.discard(started.get(timeout=_POLL_S))
        if stop.requested:  # checked first: the signal may also have ended a worker
            log.info("stopped_during_start", waiting_for=len(waiting))
            return 0
        dead = [p for p in workers if not p.is_alive()]
        if dead:
            log.error("worker_failed_to_start", exitcode=dead[0].exitcode)
            return 2 if dead[0].exitcode == 2 else 1
        if time.monotonic() > give_up:
            log.error("workers_did_not_start", waiting_for=len(waiting))
            return 1
    return None


def _watch(
    stop: _Stop,
    workers: list[BaseProcess],
    start: Callable[[int], BaseProcess],
    metrics_dir: str,
) -> None:
    """Restart crashed workers until a signal asks us to stop."""
    failures = 0
    while not stop.requested:
        for i, proc in enumerate(workers):
            if not proc.is_alive() and not stop.requested:
                failures += 1
                log.error("worker_died", exitcode=proc.exitcode, restarts=failures)
                metrics.worker_exited(proc.pid, metrics_dir)
                time.sleep(min(5.0, 0.1 * failures))  # no tight crash loop
                workers[i] = start(i)
        time.sleep(0.1)


def _stop_all(stop: _Stop, workers: list[BaseProcess]) -> None:
    """SIGTERM to every worker (each drains on its own), SIGKILL past the grace."""
    if stop.deadline == float("inf"):
        stop.deadline = time.monotonic() + 15
    stop.forward()  # again: a worker spawned after the signal has not had it yet
    while any(p.is_alive() for p in workers):
        if time.monotonic() > stop.deadline:
            for proc in workers:
                if proc.is_alive():
                    log.error("worker_killed_after_grace", pid=proc.pid)
                    proc.kill()
        time.sleep(_POLL_S)
    for proc in workers:
        proc.join()


def _clean(code: int | None) -> bool:
    return code in (0, -signal.SIGTERM, -signal.SIGHUP)
