"""The API contract (docs/contract.md §2) for complete answers, unknown products and the edges."""

from __future__ import annotations

import re

import pytest
from bff_support import KINDS, BffClient, MakeBff, Mocks, server_timing

from mock_services.catalogue import (
    find_id_with_review_count,
    inventory_for,
    product_for,
    reviews_for,
)


def expected_details(product_id: str) -> dict[str, object]:
    reviews = reviews_for(product_id)
    ratings = [r["rating"] for r in reviews]
    return {
        "product": product_for(product_id),
        "reviews": reviews,
        "reviewSummary": {
            "count": len(reviews),
            "averageRating": round(sum(ratings) / len(ratings), 2) if ratings else None,
        },
        "inventory": inventory_for(product_id),
        "degraded": {},
        "stale": {},
    }


class TestCompleteAnswer:
    """A product whose three parts all answer gets every part, `degraded: {}` and no `error`."""

    @pytest.mark.parametrize(
        "product_id",
        ["P001", find_id_with_review_count(0), find_id_with_review_count(5)],
        ids=["normal", "zero-reviews", "five-reviews"],
    )
    async def test_body_is_the_merge_of_the_three_services(
        self, bff: BffClient, product_id: str
    ) -> None:
        async with bff.get(f"/product-details/{product_id}") as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
            body = await resp.json()
        assert body == expected_details(product_id)
        assert "error" not in body

    async def test_zero_reviews_summary_has_null_average(self, bff: BffClient) -> None:
        async with bff.get(f"/product-details/{find_id_with_review_count(0)}") as resp:
            body = await resp.json()
        assert body["reviews"] == []
        assert body["reviewSummary"] == {"count": 0, "averageRating": None}

    async def test_head_answers_like_get_without_a_body(self, bff: BffClient) -> None:
        async with bff.head("/product-details/P001") as resp:
            assert resp.status == 200
            assert await resp.read() == b""


class TestUnknownProduct:
    """Product 404 → 404 problem; the optional parts do not matter."""

    async def test_missing_product_is_a_404_problem(self, bff: BffClient) -> None:
        async with bff.get("/product-details/missing-42") as resp:
            assert resp.status == 404
            assert resp.content_type == "application/problem+json"
            body = await resp.json(content_type=None)
        assert body["status"] == 404
        assert body["instance"] == "/product-details/missing-42"
        assert set(body) >= {"type", "title", "status", "detail", "instance", "requestId"}

    async def test_unknown_route_is_a_404_problem(self, bff: BffClient) -> None:
        async with bff.get("/nothing-here") as resp:
            assert resp.status == 404
            assert resp.content_type == "application/problem+json"

    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
    async def test_other_methods_are_405_with_allow(self, bff: BffClient, method: str) -> None:
        async with bff.request(method, "/product-details/P001") as resp:
            assert resp.status == 405
            assert resp.content_type == "application/problem+json"
            assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}

    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
    async def test_a_body_does_not_change_a_405(self, bff: BffClient, method: str) -> None:
        """The method is wrong whatever it carries: 405 with `Allow`, not the 413 of a GET
        with a body."""
        body = {"id": "P001"}
        async with bff.request(method, "/product-details/P001", json=body) as resp:
            assert resp.status == 405
            assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}
            problem = await resp.json(content_type=None)
        assert problem["status"] == 405

    async def test_a_get_with_a_body_is_a_413(self, bff: BffClient) -> None:
        async with bff.get("/product-details/P001", data=b"x") as resp:
            assert resp.status == 413


class TestHeaders:
    """`X-Request-ID` and `Server-Timing` on every response, success or not."""

    @pytest.mark.parametrize("path", ["/product-details/P001", "/product-details/b@d", "/nope"])
    async def test_every_response_has_request_id_and_server_timing(
        self, bff: BffClient, path: str
    ) -> None:
        async with bff.get(path) as resp:
            assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])
            assert "total" in server_timing(resp.headers["Server-Timing"])

    async def test_a_valid_incoming_request_id_is_echoed_and_forwarded(
        self, bff: BffClient, mocks: Mocks
    ) -> None:
        async with bff.get("/product-details/P001", headers={"X-Request-ID": "abc-123"}) as resp:
            assert resp.headers["X-Request-ID"] == "abc-123"
        for kind in KINDS:  # each service's last arrival carried it
            (last, *_) = reversed((await mocks.stats(kind))["recent"])
            headers = {k.lower(): v for k, v in last["headers"].items()}
            assert headers["x-request-id"] == "abc-123", kind

    @pytest.mark.parametrize("bad", ["has space", "x" * 200, "semi;colon", "é"])
    async def test_an_odd_incoming_request_id_is_replaced(self, bff: BffClient, bad: str) -> None:
        async with bff.get("/product-details/P001", headers={"X-Request-ID": bad}) as resp:
            assert resp.headers["X-Request-ID"] != bad
            assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])

    async def test_server_timing_has_one_entry_per_part_and_the_total(self, bff: BffClient) -> None:
        async with bff.get("/product-details/P001") as resp:
            timing = server_timing(resp.headers["Server-Timing"])
        assert list(timing) == ["product", "reviews", "inventory", "total"]
        for entry in timing.values():
            assert "desc" not in entry
        # In milliseconds: each part took at least its service's reference latency (product
        # 50, reviews 80, inventory 30 ms), and the total covers the slowest part.
        durations = {name: float(entry["dur"]) for name, entry in timing.items()}
        assert durations["product"] >= 50
        assert durations["reviews"] >= 80
        assert durations["inventory"] >= 30
        assert durations["total"] >= durations["reviews"]


class TestRequestBody:
    """A GET with a body is a 413, however small the body; without one it is served."""

    async def test_a_one_byte_body_is_refused_and_none_is_served(self, make_bff: MakeBff) -> None:
        bff = await make_bff()
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
        async with bff.get("/product-details/P001", data=b"x") as resp:
            assert resp.status == 413
            body = await resp.json(content_type=None)
        assert body["detail"] == "a GET or HEAD request carries no body"
