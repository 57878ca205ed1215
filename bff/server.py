"""Running the BFF: one worker in this process, or N worker processes on one port.

Several workers share the port through SO_REUSEPORT: the kernel spreads connections across
their listening sockets, no process sits in the data path, and each worker is a plain
single-loop aiohttp server (uvloop when available). We chose it over gunicorn's aiohttp worker
because it needs no extra dependency or config file and keeps start-up, signals and the port-0
case (tests) in one small module. The supervisor reserves the port (bound, not listening, so it
never receives connections), starts the workers, forwards SIGTERM/SIGINT, restarts a worker
that crashes, and exits 0 once all workers stopped cleanly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess

from aiohttp import web

from bff.app import create_app
from bff.edge.drain import drain
from bff.edge.server_limits import runner_options
from bff.keys import LIFECYCLE
from bff.observability.logging import configure_logging, log
from bff.settings import Settings


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


async def _serve(settings: Settings, *, reuse_port: bool, announce: bool) -> None:
    app = create_app(settings)
    runner = make_runner(app, settings)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port, backlog=2048)
    await site.start()
    # The bound port (port 0 asks for any); works with uvloop's server type too.
    port = runner.addresses[0][1] if runner.addresses else settings.port
    if announce:
        print(f"bff listening on http://{settings.host}:{port}", flush=True)
    log.info("worker_started", host=settings.host, port=port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await drain(runner, app[LIFECYCLE], settings, stop)
    log.info("worker_stopped")


def serve_worker(settings: Settings, *, reuse_port: bool = False, announce: bool = True) -> None:
    configure_logging(settings.log_level, settings.log_format)
    _install_uvloop()
    asyncio.run(_serve(settings, reuse_port=reuse_port, announce=announce))


def _worker_main(settings: Settings) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; SIGTERM stops us
    serve_worker(settings, reuse_port=True, announce=False)


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
    worker_settings = dataclasses.replace(settings, port=port, workers=1)
    spawn = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> BaseProcess:
        proc = spawn.Process(target=_worker_main, args=(worker_settings,), daemon=False)
        proc.start()
        return proc

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in workers:
            if proc.is_alive() and proc.pid is not None:
                proc.terminate()  # SIGTERM: each worker drains on its own

    workers = [start() for _ in range(settings.workers)]
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
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
        if not stopping:
            for i, proc in enumerate(workers):
                if not proc.is_alive():
                    failures += 1
                    log.error("worker_died", exitcode=proc.exitcode, restarts=failures)
                    time.sleep(min(5.0, 0.1 * failures))  # no tight crash loop
                    workers[i] = start()
        time.sleep(0.1)
    reservation.close()
    codes = [p.exitcode for p in workers]
    log.info("supervisor_stopped", exit_codes=codes)
    return 0 if all(c == 0 for c in codes) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(Settings.from_env()))
