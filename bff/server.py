"""Running the BFF: one worker in this process, or N worker processes on one port.

Several workers share the port through SO_REUSEPORT: the kernel spreads connections across
their listening sockets, no process sits in the data path, and each worker is a plain
single-loop aiohttp server (uvloop when available). We chose it over gunicorn's aiohttp worker
because it needs no extra dependency or config file and keeps start-up, signals and the port-0
case (tests) in one small module. Each worker also serves the admin app (bff.admin) on the
admin port, a second SO_REUSEPORT group. The supervisor (bff.supervisor) reserves both
addresses so that only its own workers can join them (bff.listeners), starts the workers,
forwards SIGTERM/SIGINT/SIGHUP, restarts a worker that crashes, and exits 0 once all
stopped.

A start can't hurt a running service: an address in use, a bad host or a failed bind stop
it with exit status 2 and one line naming the address; SIGTERM or SIGINT at any moment of
start-up stops it with exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_server import Server

from bff import listeners
from bff._compat import swap_class
from bff.admin import create_admin_app
from bff.app import create_app
from bff.edge.drain import drain
from bff.edge.protocol import BffServer
from bff.edge.server_limits import runner_options
from bff.keys import LIFECYCLE
from bff.listeners import Address, ListenError, explain
from bff.observability.logging import configure_logging, log
from bff.settings import Settings

_YOUNG_GC_THRESHOLD = 7000  # CPython's default is 700; see settle_heap
BACKLOG = 2048
# What stops us, with a drain: SIGHUP too, since a closed terminal is no reason to drop the
# requests in flight (its default action ended the process at once).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class BffRunner(web.AppRunner):
    """aiohttp's runner, whose protocol stamps each request's receive time and
    answers parser errors as problems (bff.edge.protocol)."""

    async def _make_server(self) -> Server:
        return swap_class(await super()._make_server(), BffServer)


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every POSIX platform
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    return BffRunner(
        app,
        access_log=None,  # our middleware writes one structured line per request
        handle_signals=False,
        **runner_options(settings),
    )


async def _listen(runner: web.AppRunner, address: Address, *, reuse_port: bool) -> int:
    """Start a site; an OSError becomes the one-line `ListenError`. Returns the bound port."""
    # SO_REUSEADDR always (aiohttp's default on POSIX, said here): another server's TIME_WAIT
    # connections on the port must not refuse the start (bff.listeners).
    site = web.TCPSite(
        runner,
        address.host,
        address.port,
        reuse_address=True,
        reuse_port=reuse_port,
        backlog=BACKLOG,
    )
    try:
        await site.start()
    except OSError as exc:
        raise explain(address, exc) from None
    # The bound port (port 0 asks for any); `runner.addresses` works with uvloop's server too.
    return int(runner.addresses[0][1]) if runner.addresses else address.port


async def serve(
    settings: Settings,
    *,
    reuse_port: bool,
    announce: bool,
    ready: Callable[[], None] | None = None,
    parent_pid: int | None = None,
) -> None:
    """One worker: the public and the admin listener until a signal, then the drain."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # First thing: a signal during start-up must stop us cleanly, not kill us half-built.
    # A supervised worker stops on the supervisor's SIGTERM only: Ctrl-C reaches the whole
    # process group, and a worker acting on it too would cut its own drain short.
    signals = (signal.SIGTERM,) if parent_pid is not None else STOP_SIGNALS
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    app = create_app(settings)
    runner = make_runner(app, settings)
    admin = make_runner(create_admin_app(settings, app[LIFECYCLE], public=app), settings)
    try:
        ports = await _start_unless_stopped(runner, admin, settings, stop, reuse_port=reuse_port)
    except BaseException:
        await runner.cleanup()
        await admin.cleanup()
        raise
    if ports is None:  # stopped while starting: no traffic was taken, nothing to drain
        await runner.cleanup()
        await admin.cleanup()
        log.info("worker_stopped", during="start-up")
        return
    port, admin_port = ports
    settle_heap()
    if announce:
        listeners.announce(settings.host, port, admin_port)
    log.info("worker_started", host=settings.host, port=port, admin_port=admin_port)
    if ready is not None:
        ready()
    orphan_watch = None
    if parent_pid is not None:
        orphan_watch = asyncio.create_task(_stop_when_orphaned(parent_pid, stop))
    await stop.wait()
    if orphan_watch is not None:
        orphan_watch.cancel()
    await drain(runner, app[LIFECYCLE], settings, stop)
    await admin.cleanup()
    log.info("worker_stopped")


async def _start_unless_stopped(
    runner: web.AppRunner,
    admin: web.AppRunner,
    settings: Settings,
    stop: asyncio.Event,
    *,
    reuse_port: bool,
) -> tuple[int, int] | None:
    """(public port, admin port) once both listen; None when `stop` came first. The start
    races the signal: a stop while the apps start (a JWKS fetch may take seconds) cancels
    the start rather than waiting for it."""
    starting = asyncio.ensure_future(_start(runner, admin, settings, reuse_port=reuse_port))
    signalled = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        signalled.cancel()
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        return None
    ports = starting.result()  # ListenError, or what the apps' start-up raised
    return None if stop.is_set() else ports


async def _start(
    runner: web.AppRunner, admin: web.AppRunner, settings: Settings, *, reuse_port: bool
) -> tuple[int, int]:
    """Both apps started and listening: (public port, admin port)."""
    await admin.setup()
    await runner.setup()
    port = await _listen(runner, Address(settings.host, settings.port), reuse_port=reuse_port)
    admin_address = Address(settings.host, settings.admin_port)
    return port, await _listen(admin, admin_address, reuse_port=reuse_port)


def settle_heap() -> None:
    """Tune the cyclic GC for a long-running server, once the app is built.

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
    stop.set()  # first: whoever read our output may be gone with the supervisor
    with contextlib.suppress(OSError):  # a broken stdout must not keep an orphan alive
        log.warning("supervisor_gone", parent_pid=parent_pid)


def serve_worker(settings: Settings) -> int:
    """The single-worker case: no supervisor. Exit status 2 when an address is unusable."""
    configure_logging(settings.log_level, settings.log_format)
    install_uvloop()
    try:
        asyncio.run(serve(settings, reuse_port=False, announce=True))
    except ListenError as exc:
        print(f"python -m bff: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


def run(settings: Settings) -> int:
    if settings.workers == 1:
        return serve_worker(settings)
    from bff.supervisor import supervise  # only the multi-worker case needs it

    return supervise(settings)
