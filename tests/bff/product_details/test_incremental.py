"""Incremental answers: `Accept: application/x-ndjson` gets the answer line by line, as its
parts land. The product at once (with every optional part already at hand), one line per
optional part when it lands (its value, its degradation reason, or its stale copy's age), a
last line with `degraded`, `stale`, `error` and the timings. The same deadline, reasons and
caching of parts as the plain answer, whose body the lines fold into.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from bff_support import BffClient, MakeBff, Mocks, server_timing

from bff.product_details import _wants_lines

NDJSON = {"Accept": "application/x-ndjson"}
CONTROL = ("pending", "part", "reason", "age", "done", "timings", "degraded", "stale", "error")


async def lines_of(
    bff: BffClient, path: str, **headers: str
) -> tuple[Any, list[tuple[float, Any]]]:
    """(the response, [(seconds since the request went out, the line's object)])."""
    started = time.perf_counter()
    got: list[tuple[float, Any]] = []
    sent = {**NDJSON, **{k.replace("_", "-"): v for k, v in headers.items()}}
    async with bff.get(path, headers=sent) as resp:
        if resp.content_type != "application/x-ndjson":
            return resp, [(time.perf_counter() - started, await resp.json())]
        async for raw in resp.content:
            got.append((time.perf_counter() - started, json.loads(raw)))
    return resp, got


def folded(lines: list[tuple[float, Any]]) -> dict[str, Any]:
    """The plain body the lines stand for: every part's keys, then what the last line says."""
    body: dict[str, Any] = {}
    for _, line in lines:
        body.update({k: v for k, v in line.items() if k not in CONTROL})
    last = lines[-1][1]
    body["degraded"] = last["degraded"]
    body["stale"] = last["stale"]
    if "error" in last:
        body["error"] = last["error"]
    return body


class TestTheLines:
    async def test_product_first_then_each_part_then_the_end(
        self, bff: BffClient, mocks: Mocks
    ) -> None:
        resp, lines = await lines_of(bff, "/product-details/P001")
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["X-Request-ID"]
        assert "Accept-Language" in resp.headers["Vary"]
        # The header goes out with the first line: the parts finished by then, and the time.
        header = server_timing(resp.headers["Server-Timing"])
        assert set(header) == {"product", "inventory", "total"}
        assert 45 <= float(header["product"]["dur"]) <= float(header["total"]["dur"]) < 500
        first, *parts, last = (line for _, line in lines)
        assert first["product"]["id"] == "P001"
        # Inventory (30 ms) landed before the product (50 ms): it is in the first line;
        # reviews (80 ms) come in a line of their own.
        assert first["inventory"]["productId"] == "P001"
        assert first["pending"] == ["reviews"]
        assert [p["part"] for p in parts] == ["reviews"]
        assert set(parts[0]) == {"part", "reviews", "reviewSummary"}
        assert last["done"] is True
        assert (last["degraded"], last["stale"]) == ({}, {})
        assert "error" not in last
        timings = last["timings"]
        assert set(timings) == {"product", "reviews", "inventory", "total"}
        assert 75 <= timings["reviews"] <= timings["total"] < 500
        assert all(round(ms, 1) == ms for ms in timings.values()), timings  # one decimal

    async def test_the_lines_fold_into_the_plain_answer(self, bff: BffClient) -> None:
        _, lines = await lines_of(bff, "/product-details/P002")
        async with bff.get("/product-details/P002") as resp:
            plain = await resp.json()
        assert folded(lines) == plain

    async def test_the_first_line_comes_with_the_product_not_the_slowest_part(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        """Reviews slowed to 400 ms (with an attempt timeout that lets them finish): the
        first line arrives within the product's own latency (50 ms) plus 20 ms; the
        reviews' line about 400 ms in; the last by the deadline."""
        bff = await make_bff(BFF_REVIEWS_TIMEOUT_MS="480")
        await mocks.faults("reviews", latency_ms=400)
        await mocks.faults("product", latency_ms=50)
        _, lines = await lines_of(bff, "/product-details/P003", X_Request_Timeout_Ms="480")
        (at_first, first), *rest = lines
        assert first["pending"] == ["reviews"]
        assert at_first <= 0.050 + 0.020, at_first
        reviews_at = next(at for at, line in rest if line.get("part") == "reviews")
        assert reviews_at >= 0.39
        assert lines[-1][0] <= 0.480 + 0.03
        assert lines[-1][1]["degraded"] == {}

    async def test_parts_at_hand_are_in_the_first_line(self, bff: BffClient) -> None:
        await lines_of(bff, "/product-details/P004")  # now every part is cached
        _, lines = await lines_of(bff, "/product-details/P004")
        first = lines[0][1]
        assert first["pending"] == []
        assert {"product", "reviews", "reviewSummary", "inventory"} <= set(first)
        assert [line.get("done") for _, line in lines] == [None, True]

    async def test_include_picks_the_parts(self, bff: BffClient) -> None:
        _, lines = await lines_of(bff, "/product-details/P005?include=reviews")
        first, *parts, _ = (line for _, line in lines)
        assert first["pending"] == ["reviews"]
        assert [p["part"] for p in parts] == ["reviews"]
        assert "inventory" not in folded(lines)


class TestDegradedParts:
    async def test_a_failed_part_says_why_in_its_line(self, bff: BffClient, mocks: Mocks) -> None:
        await mocks.faults("inventory", error_rate=1.0)
        _, lines = await lines_of(bff, "/product-details/P010")
        line = next(line for _, line in lines if line.get("part") == "inventory")
        assert line == {"part": "inventory", "inventory": None, "reason": "unavailable"}
        last = lines[-1][1]
        assert last["degraded"] == {"inventory": "unavailable"}
        assert last["error"] == "inventory: unavailable"

    async def test_a_part_that_failed_before_the_product_has_its_line_right_after_the_first(
        self, bff: BffClient, mocks: Mocks
    ) -> None:
        await mocks.faults("inventory", error_rate=1.0, latency_ms=0)
        await mocks.faults("product", latency_ms=250)  # within its 300 ms attempt timeout
        _, lines = await lines_of(bff, "/product-details/P013")
        (at_first, first), (at_second, second), *_ = lines
        assert "inventory" not in first
        assert first["pending"] == ["inventory"]  # reviews (80 ms) came with the product
        assert second == {"part": "inventory", "inventory": None, "reason": "unavailable"}
        assert at_second - at_first < 0.02  # written with the first line
        assert lines[-1][1]["degraded"] == {"inventory": "unavailable"}

    async def test_a_part_past_the_deadline_is_a_timeout_line_by_the_deadline(
        self, bff: BffClient, mocks: Mocks
    ) -> None:
        await mocks.faults("reviews", latency_ms=2000)
        _, lines = await lines_of(bff, "/product-details/P011", X_Request_Timeout_Ms="200")
        line = next(line for _, line in lines if line.get("part") == "reviews")
        assert line["reason"] == "timeout"
        assert line["reviews"] == []
        assert lines[-1][0] < 0.2 + 0.05
        assert lines[-1][1]["degraded"] == {"reviews": "timeout"}

    async def test_a_stale_copy_says_its_age(self, bff: BffClient, mocks: Mocks) -> None:
        await mocks.faults("reviews", cache_control="max-age=0, stale-if-error=600")
        await lines_of(bff, "/product-details/P012")
        await mocks.faults("reviews", error_rate=1.0, cache_control="max-age=0, stale-if-error=600")
        _, lines = await lines_of(bff, "/product-details/P012")
        line = next(line for _, line in lines if line.get("part") == "reviews")
        assert line["age"] >= 0
        assert "reason" not in line
        assert lines[-1][1]["stale"] == {"reviews": line["age"]}


class TestWhatStaysAsItIs:
    async def test_a_product_failure_before_the_first_line_is_the_usual_problem(
        self, bff: BffClient
    ) -> None:
        resp, [(_, body)] = await lines_of(bff, "/product-details/missing-1")
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
        assert body["type"] == "/problems/not-found"

    async def test_a_bad_id_is_a_400_problem(self, bff: BffClient) -> None:
        resp, [(_, body)] = await lines_of(bff, "/product-details/bad%20id")
        assert resp.status == 400
        assert body["type"] == "/problems/invalid-request"

    @pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
    async def test_json_is_answered_as_before(self, bff: BffClient, accept: str | None) -> None:
        headers = {} if accept is None else {"Accept": accept}
        async with bff.get("/product-details/P020", headers=headers) as resp:
            assert resp.content_type == "application/json"
            body = await resp.json()
        assert body["product"]["id"] == "P020"

    async def test_head_is_answered_as_before(self, bff: BffClient) -> None:
        async with bff.head("/product-details/P021", headers=NDJSON) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"

    async def test_the_edge_rules_hold(self, make_bff: MakeBff) -> None:
        """CORS headers on a streamed answer, as on any other."""
        bff = await make_bff(BFF_CORS_ORIGINS="https://shop.example")
        resp, _ = await lines_of(bff, "/product-details/P022", Origin="https://shop.example")
        assert resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"

    async def test_a_client_that_goes_away_mid_answer_leaves_nothing_running(
        self, bff: BffClient, mocks: Mocks
    ) -> None:
        await mocks.faults("reviews", latency_ms=300)
        async with bff.get("/product-details/P023", headers=NDJSON) as resp:
            await resp.content.readline()  # the first line, then hang up
        await asyncio.sleep(0.4)
        assert bff.app is not None
        from bff.keys import ADMISSION

        assert bff.app[ADMISSION].in_flight == 0


class TestChoosingTheFormat:
    """`Accept` decides; NDJSON only when it is preferred (or equal) to plain JSON."""

    @pytest.mark.parametrize(
        ("accept", "lines"),
        [
            ("application/x-ndjson", True),
            ("application/x-ndjson, application/json;q=0.5", True),
            ("application/json, application/x-ndjson;q=0.5", False),
            ("application/x-ndjson;q=0", False),
            ("application/x-ndjson;q=garbage", False),
            ("*/*", False),
            ("text/html, application/x-ndjson", True),
        ],
    )
    def test_weights(self, accept: str, lines: bool) -> None:
        assert _wants_lines(accept) is lines
