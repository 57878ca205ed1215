"""Real servers in a background thread, for tests whose own calls block (Selenium, the
schemathesis runner, `requests`): they cannot share the test's thread.

`ServerThread` runs an event loop of its own and serves aiohttp apps on loopback from it
(bound sockets first, so a page's origin is known before the app that must allow it is
built). Every wait is bounded, and `close()` stops the apps and the loop within a few
seconds whatever state they are in.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")
STEP_S = 10.0  # bound on any one step (a start, a page load, a stop)


def bound_socket() -> socket.socket:
    """A listening-ready TCP socket on a free loopback port (its port is the page's origin)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def url_of(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


class ServerThread:
    """An event loop in a daemon thread, serving apps until `close()`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._runners: list[web.AppRunner] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = STEP_S) -> T:
        """Run `coro` on the servers' loop and return its result (bounded)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(
        self, app: web.Application, sock: socket.socket | None = None, runner: Any = None
    ) -> str:
        """Serve `app` on `sock` (a fresh free port by default); its base URL."""
        sock = sock or bound_socket()

        async def start() -> None:
            app_runner = runner(app) if runner is not None else web.AppRunner(app)
            await app_runner.setup()
            self._runners.append(app_runner)
            await web.SockSite(app_runner, sock).start()

        self.call(start())
        return url_of(sock)

    def close(self) -> None:
        async def stop() -> None:
            for runner in reversed(self._runners):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runner.cleanup(), STEP_S / 2)

        with contextlib.suppress(Exception):
            self.call(stop(), timeout=STEP_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STEP_S)
        if not self._thread.is_alive():
            self.loop.close()
