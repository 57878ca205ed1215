"""`?include=`: the optional parts a client wants; the product always comes.

Absent means all. A part not included is not called (the mocks' own counters say so) and its
keys are absent. An unknown part, an empty item or a repeated parameter is a 400 problem
naming `include`; other query parameters are ignored.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import pytest
from bff_support import BffClient, Mocks, server_timing

from bff.parts import PARTS, optional_names

ALL_KEYS = {"product", "reviews", "reviewSummary", "inventory", "degraded", "stale"}


async def get(bff: BffClient, query: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
    async with bff.get(f"/product-details/P001{query}") as resp:
        timing = server_timing(resp.headers["Server-Timing"])
        return resp.status, await resp.json(content_type=None), timing


class TestValidForms:
    """Every valid form answers 200 with exactly the included parts' keys."""

    @pytest.mark.parametrize(
        ("query", "keys"),
        [
            ("", ALL_KEYS),
            ("?include=reviews,inventory", ALL_KEYS),
            ("?include=inventory,reviews", ALL_KEYS),
            ("?include=reviews", ALL_KEYS - {"inventory"}),
            ("?include=inventory", ALL_KEYS - {"reviews", "reviewSummary"}),
            ("?include=reviews,reviews", ALL_KEYS - {"inventory"}),
            ("?include=inventory&other=1&x=", ALL_KEYS - {"reviews", "reviewSummary"}),
            ("?other=reviews", ALL_KEYS),
        ],
    )
    async def test_keys_follow_include(self, bff: BffClient, query: str, keys: set[str]) -> None:
        status, body, timing = await get(bff, query)
        assert status == 200
        assert set(body) == keys
        assert set(timing) == {k for k in keys if k in {p.name for p in PARTS}} | {"total"}

    async def test_a_part_not_included_is_not_called(self, bff: BffClient, mocks: Mocks) -> None:
        before = {k: await mocks.requests(k) for k in ("product", "reviews", "inventory")}
        for _ in range(3):
            status, _, _ = await get(bff, "?include=inventory")
            assert status == 200
        after = {k: await mocks.requests(k) for k in ("product", "reviews", "inventory")}
        assert after["reviews"] == before["reviews"]
        assert after["inventory"] > before["inventory"]
        assert after["product"] > before["product"]

    async def test_only_the_product_when_include_names_one_part_that_degrades(
        self, bff: BffClient, mocks: Mocks
    ) -> None:
        await mocks.faults("reviews", error_rate=1.0)
        status, body, _ = await get(bff, "?include=inventory")
        assert status == 200
        assert body["degraded"] == {}
        assert "reviews" not in body


class TestInvalidForms:
    """Each invalid form is a 400 problem naming `include`, before any downstream call."""

    @pytest.mark.parametrize(
        "query",
        [
            "?include=",
            "?include=product",
            "?include=reviews,",
            "?include=,reviews",
            "?include=reviews,,inventory",
            "?include=Reviews",
            "?include=reviews%20",
            "?include=wishlist",
            "?include=reviews&include=inventory",
            "?include=reviews&include=reviews",
        ],
    )
    async def test_refused(self, bff: BffClient, mocks: Mocks, query: str) -> None:
        before = await mocks.requests("product")
        async with bff.get(f"/product-details/P001{query}") as resp:
            assert resp.status == 400
            assert resp.content_type == "application/problem+json"
            problem = await resp.json(content_type=None)
        assert problem["invalidParams"][0]["name"] == "include"
        assert await mocks.requests("product") == before


class TestDocumented:
    """The OpenAPI document describes `include` with the declared optional parts."""

    def test_include_parameter_lists_the_optional_parts(self) -> None:
        document = json.loads(files("bff").joinpath("openapi.json").read_text())
        operation = document["paths"]["/product-details/{id}"]["get"]
        (include,) = [p for p in operation["parameters"] if p["name"] == "include"]
        names = "|".join(optional_names(PARTS))
        assert include["schema"]["pattern"] == f"^({names})(,({names}))*$"
        properties = document["components"]["schemas"]["ProductDetails"]["properties"]
        assert {key for part in PARTS for key in part.keys} <= set(properties)
