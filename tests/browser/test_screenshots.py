"""The pictures of the three pages in README.md and docs/pages.md.

`make screenshots` runs this test with SCREENSHOTS_DIR=docs/images to regenerate them; in
`make test` the same pictures are taken into a temporary directory, so the code that makes
them cannot rot unnoticed.
"""

from __future__ import annotations

import os
import struct
import urllib.request
from pathlib import Path

import pytest
from browser_support import STEP_S, open_page, text_of, wait_until
from conftest import KINDS, Stack
from selenium.webdriver.remote.webdriver import WebDriver

from mock_services.catalogue import ID_WITH_FIVE_REVIEWS
from mock_services.presets import PRESETS

pytestmark = pytest.mark.slow

WIDTH = 1280


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def shoot(driver: WebDriver, path: Path) -> None:
    """The whole page, not only the window: the window grows to the page's height first."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, max(600, min(int(height) + 20, 3000)))
    driver.save_screenshot(str(path))


def test_the_three_pages(browser: WebDriver, stack: Stack, tmp_path: Path) -> None:
    target = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    try:
        open_page(browser, f"{stack.storefront}/?id={ID_WITH_FIVE_REVIEWS}")
        wait_until(browser, lambda d: "complete" in text_of(d, "timing-note"), STEP_S)
        shoot(browser, target / "storefront.png")

        # Some weather for the lab and the status page: a brownout, and traffic through it.
        for kind in KINDS:
            stack.mocks[kind].install(PRESETS["brownout"].for_service(kind))
        for n in range(40):
            url = f"{stack.bff}/product-details/SHOT-{n}"
            with urllib.request.urlopen(url, timeout=STEP_S):
                pass
        open_page(browser, stack.lab)
        wait_until(browser, lambda d: "SHOT-" in text_of(d, "reviews-recent"), STEP_S)
        shoot(browser, target / "fault-lab.png")
        open_page(browser, f"{stack.admin}/status")
        wait_until(browser, lambda d: "Worker" in text_of(d, "workers"), STEP_S)
        shoot(browser, target / "status.png")
    finally:
        browser.set_window_size(WIDTH, 1000)
    for name in ("storefront.png", "fault-lab.png", "status.png"):
        width, height = png_size(target / name)
        assert width >= WIDTH - 20, name
        assert height >= 500, name
