"""The status page in a real browser: a breaker that opens is on screen within a second."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from accessibility import accessibility_problems
from browser_support import STEP_S, open_page, text_of, texts, wait_until
from conftest import Stack
from selenium.webdriver.remote.webdriver import WebDriver

from mock_services import FaultSettings

# A browser is a process of its own, ~1 s to start: slow, as every test that starts one.
pytestmark = pytest.mark.slow


def breaker_shown(driver: WebDriver, service: str) -> str:
    cells = texts(driver, f'tr[data-service="{service}"] td[data-field="breaker"]')
    return cells[0] if cells else ""


class TestStatusPage:
    def test_shows_each_service_and_the_admission(self, browser: WebDriver, stack: Stack) -> None:
        open_page(browser, f"{stack.admin}/status")
        wait_until(browser, lambda d: breaker_shown(d, "inventory") == "closed", STEP_S)
        assert texts(browser, "tr[data-service]", "data-service") == [
            "product",
            "reviews",
            "inventory",
        ]
        assert "serving" in text_of(browser, "workers")
        assert accessibility_problems(browser) == []

    def test_a_breaker_opening_shows_within_a_second(
        self, browser: WebDriver, stack: Stack
    ) -> None:
        open_page(browser, f"{stack.admin}/status")
        wait_until(browser, lambda d: breaker_shown(d, "reviews") == "closed", STEP_S)
        stack.mocks["reviews"].install(FaultSettings(error_rate=1.0, latency_ms=1))
        for n in range(200):  # bounded; the breaker opens after 20 failed calls
            url = f"{stack.bff}/product-details/BRK-{n}"
            try:
                with urllib.request.urlopen(url, timeout=STEP_S):
                    pass
            except urllib.error.HTTPError as exc:
                raise AssertionError(f"the product still answers: {exc}") from exc
            if stack.breaker("reviews") == "open":
                break
        assert stack.breaker("reviews") == "open"
        opened = time.perf_counter()
        wait_until(browser, lambda d: breaker_shown(d, "reviews") == "open", 1.0)
        assert time.perf_counter() - opened <= 1.0
        assert breaker_shown(browser, "product") == "closed"
