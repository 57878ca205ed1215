"""Graceful degradation: optional parts fail soft, the essential part fails with the right status.

Every failure the mocks' fault API can produce is tried on each part.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from bff_support import BffClient, MakeBff, Mocks, server_timing, stand_in
from pytest_aiohttp import AiohttpServer

# (fault fields, reason an optional part gets, status a product failure gets)
FAILURES: dict[str, tuple[dict[str, Any], str, int]] = {
    "503-every-time": ({"error_rate": 1}, "unavailable", 502),
    "500-every-time": ({"error_rate": 1, "error_status": 500}, "unavailable", 502),
    "malformed-json": ({"malformed_rate": 1}, "bad_response", 502),
    "wrong-schema": ({"wrong_schema_rate": 1}, "bad_response", 502),
    "connection-reset": ({"reset_rate": 1}, "unavailable", 502),
    "slow-past-deadline": ({"latency_ms": 5000}, "timeout", 504),
    "slow-share-past-deadline": ({"slow_rate": 1, "slow_ms": 5000}, "timeout", 504),
}

EMPTY_REVIEWS = {"reviews": [], "reviewSummary": {"count": 0, "averageRating": None}}


async def break_service(mocks: Mocks, kind: Any, failure: str) -> None:
    if failure == "service-stopped":
        await mocks.stop(kind)
    else:
        await mocks.faults(kind, **FAILURES[failure][0])


ALL_FAILURES = [*FAILURES, "service-stopped"]


def reason_of(failure: str) -> str:
    return "unavailable" if failure == "service-stopped" else FAILURES[failure][1]


def status_of(failure: str) -> int:
    return 502 if failure == "service-stopped" else FAILURES[failure][2]


@pytest.fixture
async def bff(make_bff: MakeBff) -> BffClient:
    return await make_bff(BFF_DEADLINE_MS=400)


class TestOptionalPartsDegrade:
    """Reviews or inventory failing → 200, the part marked in `degraded` with its reason."""

    @pytest.mark.parametrize("failure", ALL_FAILURES)
    async def test_reviews_failure(self, bff: BffClient, mocks: Mocks, failure: str) -> None:
        await break_service(mocks, "reviews", failure)
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
            body = await resp.json()
            timing = server_timing(resp.headers["Server-Timing"])
        reason = reason_of(failure)
        assert body["degraded"] == {"reviews": reason}
        assert body["error"] == f"reviews: {reason}"
        assert {k: body[k] for k in EMPTY_REVIEWS} == EMPTY_REVIEWS
        assert body["inventory"] is not None
        assert body["product"]["id"] == "P001"
        assert timing["reviews"]["desc"] == reason
        assert "desc" not in timing["product"]

    @pytest.mark.parametrize("failure", ALL_FAILURES)
    async def test_inventory_failure(self, bff: BffClient, mocks: Mocks, failure: str) -> None:
        await break_service(mocks, "inventory", failure)
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
            body = await resp.json()
        reason = reason_of(failure)
        assert body["degraded"] == {"inventory": reason}
        assert body["error"] == f"inventory: {reason}"
        assert body["inventory"] is None  # unknown, not "out of stock"
        # The rest of the answer is whole: the reviews exactly as the reviews service has them.
        reviews = json.loads(await mocks.body("reviews", "/reviews/P001"))
        assert reviews, "P001 has reviews in the mock's catalogue"
        assert body["reviews"] == reviews
        assert body["reviewSummary"]["count"] == len(reviews)

    async def test_both_optional_parts_failing_lists_both(
        self, bff: BffClient, mocks: Mocks
    ) -> None:
        await mocks.faults("reviews", malformed_rate=1)
        await mocks.stop("inventory")
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["degraded"] == {"reviews": "bad_response", "inventory": "unavailable"}
        assert body["error"] == "reviews: bad_response; inventory: unavailable"


class TestProductFailureFailsTheRequest:
    """The product is essential: its failure decides the status, as a problem document."""

    @pytest.mark.parametrize("failure", ALL_FAILURES)
    async def test_product_failure_status(self, bff: BffClient, mocks: Mocks, failure: str) -> None:
        await break_service(mocks, "product", failure)
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == status_of(failure)
            assert resp.content_type == "application/problem+json"
            body = await resp.json(content_type=None)
        assert body["status"] == status_of(failure)
        assert body["detail"] == f"product: {reason_of(failure)}"
        assert "Traceback" not in str(body)


class TestInventoryWithoutRecord:
    """An inventory service answering 404 for an existing product: stock unknown."""

    async def test_body_header_and_log_all_say_unavailable(
        self, make_bff: MakeBff, aiohttp_server: AiohttpServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        async def no_record(request: web.Request) -> web.Response:
            return web.json_response({"error": "not_found"}, status=404)

        inventory = await stand_in(aiohttp_server, no_record, "/inventory/{id}")
        bff = await make_bff(BFF_INVENTORY_URL=str(inventory.make_url("")).rstrip("/"))
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
            body = await resp.json()
            timing = server_timing(resp.headers["Server-Timing"])
        assert body["degraded"] == {"inventory": "unavailable"}
        assert body["inventory"] is None
        assert timing["inventory"]["desc"] == "unavailable"
        assert "not_found" not in capsys.readouterr().out
