"""The three services over HTTP: docs/contract.md §1 wire format, ids, missing ids, determinism."""

from __future__ import annotations

import aiohttp
import pytest
from mock_support import KINDS, PATHS, MakeMock, MockClient
from process_support import TIMEOUT_S, announced_mocks, running

from mock_services import ServiceKind
from mock_services.catalogue import (
    ID_WITH_FIVE_REVIEWS,
    ID_WITH_NO_REVIEWS,
    inventory_for,
    product_for,
    reviews_for,
)


class TestWireFormat:
    """Each service answers 200 with JSON bodies equal to the catalogue's."""

    async def test_product(self, product: MockClient) -> None:
        async with product.get("/products/P001") as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
            assert await resp.json() == product_for("P001")

    async def test_reviews(self, reviews: MockClient) -> None:
        async with reviews.get(f"/reviews/{ID_WITH_FIVE_REVIEWS}") as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body == reviews_for(ID_WITH_FIVE_REVIEWS)
        assert len(body) == 5
        assert set(body[0]) == {"productId", "rating", "comment", "author"}

    async def test_reviews_can_be_empty(self, reviews: MockClient) -> None:
        async with reviews.get(f"/reviews/{ID_WITH_NO_REVIEWS}") as resp:
            assert resp.status == 200
            assert await resp.json() == []

    async def test_inventory(self, inventory: MockClient) -> None:
        async with inventory.get("/inventory/P001") as resp:
            assert resp.status == 200
            assert await resp.json() == inventory_for("P001")

    async def test_each_service_serves_only_its_route(self, product: MockClient) -> None:
        async with product.get("/reviews/P001") as resp:
            assert resp.status == 404


class TestIds:
    """Invalid ids are a 400 with a JSON body; `missing*` ids do not exist."""

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("bad", ["x" * 65, "P%201", "a.b", "%C3%A9"])
    async def test_invalid_id_is_400(
        self, make_mock: MakeMock, kind: ServiceKind, bad: str
    ) -> None:
        client = await make_mock(kind)
        async with client.get(PATHS[kind].format(bad)) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"] == "invalid_id"

    @pytest.mark.parametrize("kind", ["product", "inventory"])
    async def test_missing_is_404(self, make_mock: MakeMock, kind: ServiceKind) -> None:
        client = await make_mock(kind)
        async with client.get(PATHS[kind].format("missing-P1")) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"] == "not_found"

    async def test_missing_reviews_are_empty(self, reviews: MockClient) -> None:
        async with reviews.get("/reviews/missing") as resp:
            assert resp.status == 200
            assert await resp.json() == []

    async def test_longest_valid_id(self, product: MockClient) -> None:
        long_id = "a-" * 32
        async with product.get(f"/products/{long_id}") as resp:
            assert resp.status == 200
            assert (await resp.json())["id"] == long_id


class TestDeterminism:
    """The same id gives the same body from every app instance; ids differ from each other."""

    @pytest.mark.slow
    async def test_a_separate_process_serves_the_same_bodies(self, make_mock: MakeMock) -> None:
        """`python -m mock_services` in another interpreter (another hash seed) answers each
        id with the same bytes as an app in this process."""
        args = ["-m", "mock_services", "--product-port=0", "--reviews-port=0"]
        args += ["--inventory-port=0", "--lab-port=0", "--latency-scale=0"]
        async with running(args, {"PYTHONHASHSEED": "7"}) as (_, lines):
            urls = await announced_mocks(lines)
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                for kind in KINDS:
                    here = await make_mock(kind)
                    for product_id in ("Zed_9", "P001", "abc-1"):
                        path = PATHS[kind].format(product_id)
                        async with session.get(urls[kind] + path) as a, here.get(path) as b:
                            assert (a.status, await a.read()) == (b.status, await b.read())

    async def test_bodies_vary_across_ids(self, inventory: MockClient) -> None:
        stocks = set()
        for n in range(30):
            async with inventory.get(f"/inventory/P{n:03d}") as resp:
                stocks.add((await resp.json())["stock"])
        assert len(stocks) > 5
