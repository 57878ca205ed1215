"""Real servers in a background thread, and headless Debian chromium driven by Selenium.

Selenium's calls block, so the servers cannot share the test's thread: `ServerThread` runs an
event loop of its own and serves aiohttp apps on loopback from it (bound sockets first, so a
page's origin is known before the app that must allow it is built). Every wait is bounded, and
`close()` stops the apps and the loop within a few seconds whatever state they are in.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from aiohttp import web
from required_tools import require_tool
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

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


def chromium() -> Iterator[WebDriver]:
    """Headless chromium, fresh profile, no network of its own; always quit (bounded)."""
    binary = require_tool("chromium")
    driver_path = require_tool("chromedriver")
    profile = tempfile.mkdtemp(prefix="bff-browser-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where chromium's sandbox refuses to start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # Without these the browser reaches for update, sync and component servers that a
        # closed network never answers, and can hang at start.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(STEP_S)
    driver.set_script_timeout(STEP_S)
    try:
        yield driver
    finally:
        _quit(driver)
        shutil.rmtree(profile, ignore_errors=True)


def _quit(driver: WebDriver) -> None:
    """`quit()` in a thread we wait for at most STEP_S; then the driver's process is killed."""
    done = threading.Thread(target=driver.quit, daemon=True)
    done.start()
    done.join(STEP_S)
    if done.is_alive():
        process = getattr(driver.service, "process", None)
        if process is not None:
            process.kill()


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], T], timeout: float) -> T:
    """`condition`'s first truthy value, polling every 20 ms; fails the test after `timeout`."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.02).until(condition)
    except TimeoutException as exc:
        raise AssertionError(f"not within {timeout} s: {condition}") from exc


def text_of(driver: WebDriver, element_id: str) -> str:
    """What a person reads in the element (empty when it is hidden)."""
    result: str = driver.execute_script(
        "const e = document.getElementById(arguments[0]);"
        "return e && e.checkVisibility() ? e.innerText : '';",
        element_id,
    )
    return result


def texts(driver: WebDriver, selector: str, attribute: str | None = None) -> list[str]:
    """The text (or `attribute`) of every element `selector` matches, read in one script: a
    page that redraws itself would leave Selenium's element handles stale between calls."""
    result: list[str] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map((e) => arguments[1] ? e.getAttribute(arguments[1]) : e.innerText);",
        selector,
        attribute,
    )
    return result


def open_page(driver: WebDriver, url: str) -> None:
    """Load `url` and wait for its script to say it is ready (`body[data-ready]`)."""
    driver.get(url)
    wait_until(driver, lambda d: d.execute_script("return document.body.dataset.ready"), STEP_S)


def elapsed_since(started: float) -> float:
    return time.perf_counter() - started
