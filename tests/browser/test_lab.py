"""The fault lab in a real browser: controls that change the mocks, presets, recent requests."""

from __future__ import annotations

import urllib.request

import pytest
from accessibility import accessibility_problems
from browser_support import STEP_S, open_page, text_of, texts, wait_until
from conftest import KINDS, Stack
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from mock_services.presets import PRESETS

# A browser is a process of its own, ~1 s to start: slow, as every test that starts one.
pytestmark = pytest.mark.slow


class TestLab:
    def test_shows_every_fault_field_of_every_service(
        self, browser: WebDriver, stack: Stack
    ) -> None:
        open_page(browser, stack.lab)
        for kind in KINDS:
            for field, value in stack.mocks[kind].faults.to_json().items():
                control = browser.find_element(By.ID, f"{kind}-{field}")
                if isinstance(value, bool):
                    assert control.is_selected() == value
                else:
                    expected = "" if value is None else str(value)
                    shown = control.get_attribute("value") or ""
                    assert shown == expected or float(shown) == float(expected), (kind, field)
        assert accessibility_problems(browser) == []

    def test_a_preset_button_applies_to_every_service(
        self, browser: WebDriver, stack: Stack
    ) -> None:
        open_page(browser, stack.lab)
        browser.find_element(By.CSS_SELECTOR, "button[data-preset=brownout]").click()
        wait_until(browser, lambda d: "preset brownout applied" in text_of(d, "notice"), STEP_S)
        for kind in KINDS:
            assert stack.mocks[kind].faults.error_rate == (
                PRESETS["brownout"].for_service(kind).error_rate
            )
        shown = browser.find_element(By.ID, "reviews-error_rate").get_attribute("value")
        assert float(shown or "nan") == 0.10

    def test_recent_requests_appear_within_a_second(self, browser: WebDriver, stack: Stack) -> None:
        open_page(browser, stack.lab)
        with urllib.request.urlopen(f"{stack.mock_urls['reviews']}/reviews/LAB-R1", timeout=5):
            pass
        # Within a second and a poll: the row, once the request completed (status and time).
        row = "tr:has(td:nth-child(2))"
        wait_until(
            browser,
            lambda d: any(
                "/reviews/LAB-R1\t200\t" in t for t in texts(d, f"#reviews-recent {row}")
            ),
            1.5,
        )
        assert "1 requests since start" in text_of(browser, "reviews-count")
