"""Headless Debian chromium driven by Selenium, and the pages' helpers.

Selenium's calls block, so the servers cannot share the test's thread: they run on a
`ServerThread` (server_thread_support). Every wait is bounded.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from required_tools import require_tool
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from server_thread_support import STEP_S

T = TypeVar("T")


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
