"""The storefront in a real browser: what a shopper sees, as the answer arrives.

Two kinds of test. `TestRendering` serves the page against a stand-in that speaks the
incremental format of docs/contract.md line by line, with delays the test chooses: it pins
the page's rendering logic. `TestWithTheBff` runs the whole stack (mocks, BFF with the CORS
setting `make run` uses, storefront) and acts through the fault lab, as a developer would.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from accessibility import accessibility_problems
from aiohttp import web
from browser_support import STEP_S, open_page, text_of, wait_until
from conftest import Stack, start_stack
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from server_thread_support import ServerThread, bound_socket, url_of

from mock_services import FaultSettings
from mock_services.catalogue import ID_WITH_FIVE_REVIEWS
from storefront import create_storefront_app

# A browser is a process of its own, ~1 s to start: slow, as every test that starts one.
pytestmark = pytest.mark.slow

PRODUCT = {"id": "X1", "name": "Stand-in Gadget X1", "description": "A test double.", "price": 1999}
REVIEWS = [{"productId": "X1", "rating": 4, "comment": "Solid.", "author": "Dana"}]
SUMMARY = {"count": 1, "averageRating": 4.0}
REVIEWS_DELAY_S = 0.3


def standin_app(storefront_origin: str) -> web.Application:
    """A stand-in for the BFF, used only by the rendering tests of the page: it answers
    `GET /product-details/{id}` in the incremental format (docs/contract.md), or as plain JSON
    or a problem, by id, with CORS for the storefront's origin."""

    async def details(request: web.Request) -> web.StreamResponse:
        scenario = request.match_info["id"]
        cors = {
            "Access-Control-Allow-Origin": storefront_origin,
            "Access-Control-Expose-Headers": "Server-Timing",
        }
        if scenario == "missing":
            problem = {"type": "/problems/not-found", "title": "Product not found", "status": 404}
            return web.json_response(
                problem, status=404, headers=cors, content_type="application/problem+json"
            )
        if scenario == "plain":
            body = {
                "product": PRODUCT,
                "reviews": [],
                "reviewSummary": {"count": 0, "averageRating": None},
                "inventory": {"productId": "X1", "stock": 3},
                "degraded": {"reviews": "circuit_open"},
                "stale": {},
                "error": "reviews: circuit_open",
            }
            cors["Server-Timing"] = (
                'product;dur=40.5, reviews;dur=0.1;desc="circuit_open", inventory;dur=20.2, '
                "total;dur=41.0"
            )
            return web.json_response(body, headers=cors)
        response = web.StreamResponse(headers={**cors, "Content-Type": "application/x-ndjson"})
        await response.prepare(request)

        async def line(obj: dict[str, Any]) -> None:
            await response.write(json.dumps(obj).encode() + b"\n")

        stale = scenario == "stale"
        await line({"product": PRODUCT, "pending": ["reviews", "inventory"]})
        await line({"part": "inventory", "inventory": None, "reason": "timeout"})
        await asyncio.sleep(REVIEWS_DELAY_S)
        reviews: dict[str, Any] = {"part": "reviews", "reviews": REVIEWS, "reviewSummary": SUMMARY}
        if stale:
            reviews["age"] = 12
        await line(reviews)
        await line(
            {
                "done": True,
                "degraded": {"inventory": "timeout"},
                "stale": {"reviews": 12, "product": 30} if stale else {},
                "error": "inventory: timeout",
                "timings": {"product": 51.2, "reviews": 380.4, "inventory": 500.1, "total": 501.0},
            }
        )
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/product-details/{id}", details)
    return app


@pytest.fixture(scope="module")
def standin() -> Iterator[str]:
    """The storefront, pointed at the stand-in; its URL."""
    servers = ServerThread()
    try:
        storefront_sock, standin_sock = bound_socket(), bound_socket()
        servers.serve(standin_app(url_of(storefront_sock)), standin_sock)
        yield servers.serve(create_storefront_app(url_of(standin_sock)), storefront_sock)
    finally:
        servers.close()


def renders(driver: WebDriver) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = driver.execute_script("return window.storefrontRenders")
    return result


class TestRendering:
    def test_product_at_once_then_each_part_as_it_lands(
        self, browser: WebDriver, standin: str
    ) -> None:
        open_page(browser, f"{standin}/?id=stream")
        wait_until(browser, lambda d: text_of(d, "product-name") == PRODUCT["name"], STEP_S)
        # What a shopper sees before the reviews line: the product, and a wait for reviews.
        assert text_of(browser, "reviews-summary") == "Loading reviews…"
        assert text_of(browser, "product-price") == "$19.99"
        wait_until(browser, lambda d: "1 review" in text_of(d, "reviews-summary"), STEP_S)
        assert text_of(browser, "stock-text").startswith("Stock unknown")
        assert "Solid." in text_of(browser, "reviews-list")
        wait_until(browser, lambda d: "complete" in text_of(d, "timing-note"), STEP_S)
        seen = {r["what"]: r["at"] for r in renders(browser)}
        assert seen["reviews"] - seen["product"] >= REVIEWS_DELAY_S * 1000 - 50
        bars = browser.find_elements(By.CSS_SELECTOR, "#waterfall li")
        assert [b.get_attribute("data-part") for b in bars] == [
            "product",
            "reviews",
            "inventory",
            "total",
        ]
        assert "inventory (timeout)" in text_of(browser, "waterfall")
        assert "Degraded: inventory: timeout" in text_of(browser, "timing-note")
        assert accessibility_problems(browser) == []

    def test_stale_parts_are_marked_with_their_age(self, browser: WebDriver, standin: str) -> None:
        open_page(browser, f"{standin}/?id=stale")
        wait_until(browser, lambda d: "complete" in text_of(d, "timing-note"), STEP_S)
        assert "Saved copy, 12 s old" in text_of(browser, "reviews-summary")
        assert text_of(browser, "stale-product") == "Saved copy, 30 s old"

    def test_a_plain_json_answer_still_renders(self, browser: WebDriver, standin: str) -> None:
        """A proxy that buffers the stream hands the page one JSON object."""
        open_page(browser, f"{standin}/?id=plain")
        wait_until(browser, lambda d: "complete" in text_of(d, "timing-note"), STEP_S)
        assert text_of(browser, "product-name") == PRODUCT["name"]
        assert text_of(browser, "reviews-summary").startswith("Reviews unavailable")
        assert text_of(browser, "stock-text") == "In stock: 3 left."
        bars = browser.find_elements(By.CSS_SELECTOR, "#waterfall li")
        assert len(bars) == 4, "timings from Server-Timing"
        assert accessibility_problems(browser) == []

    def test_a_problem_shows_its_title(self, browser: WebDriver, standin: str) -> None:
        open_page(browser, f"{standin}/?id=missing")
        wait_until(browser, lambda d: text_of(d, "problem") != "", STEP_S)
        assert text_of(browser, "problem").startswith("Product not found")
        assert text_of(browser, "product-name") == "", "no product is shown"

    def test_the_id_is_chosen_in_the_page(self, browser: WebDriver, standin: str) -> None:
        open_page(browser, f"{standin}/?id=plain")
        field = browser.find_element(By.ID, "product-id")
        assert field.get_attribute("value") == "plain"
        field.clear()
        field.send_keys("missing")
        browser.find_element(By.CSS_SELECTOR, "#choose button").click()
        wait_until(browser, lambda d: text_of(d, "problem") != "", STEP_S)
        assert browser.current_url.endswith("?id=missing")


def answers_ndjson(bff: str) -> bool:
    request = urllib.request.Request(
        f"{bff}/product-details/NDJSON-PROBE", headers={"Accept": "application/x-ndjson"}
    )
    with urllib.request.urlopen(request, timeout=STEP_S) as response:  # loopback only
        return bool(response.headers.get("Content-Type", "").startswith("application/x-ndjson"))


class TestWithTheBff:
    def test_a_fault_set_in_the_lab_shows_on_the_storefront(
        self, browser: WebDriver, stack: Stack
    ) -> None:
        open_page(browser, stack.lab)
        rate = browser.find_element(By.ID, "inventory-error_rate")
        rate.clear()
        rate.send_keys("1")
        browser.find_element(By.CSS_SELECTOR, "#service-inventory button[type=submit]").click()
        wait_until(browser, lambda d: "inventory: faults applied" in text_of(d, "notice"), STEP_S)
        assert stack.mocks["inventory"].faults.error_rate == 1.0
        applied = time.perf_counter()

        browser.get(f"{stack.storefront}/?id=LAB-1")
        wait_until(browser, lambda d: text_of(d, "stock-text").startswith("Stock unknown"), 1.0)
        assert time.perf_counter() - applied < 1.0 + 0.5, "page load included"
        assert text_of(browser, "product-name") == "Awesome Gadget LAB-1"
        assert "unreachable" in text_of(browser, "stock-text")
        assert accessibility_problems(browser) == []

    def test_product_before_reviews_when_reviews_are_slow(self, browser: WebDriver) -> None:
        """Reviews slowed to 400 ms (an attempt timeout that lets them finish): the product,
        known after ~50 ms, is on screen while the reviews are still on their way."""
        stack = start_stack({"BFF_REVIEWS_TIMEOUT_MS": "480"})
        try:
            assert answers_ndjson(stack.bff)
            stack.mocks["reviews"].install(FaultSettings(latency_ms=400))
            open_page(browser, f"{stack.storefront}/?id={ID_WITH_FIVE_REVIEWS}")
            name = f"Awesome Gadget {ID_WITH_FIVE_REVIEWS}"
            wait_until(browser, lambda d: text_of(d, "product-name") == name, 1.0)
            assert text_of(browser, "reviews-summary") == "Loading reviews…"
            wait_until(browser, lambda d: "5 reviews" in text_of(d, "reviews-summary"), 1.0)
            seen = {r["what"]: r["at"] for r in renders(browser)}
            assert seen["reviews"] - seen["product"] >= 300
        finally:
            stack.servers.close()
