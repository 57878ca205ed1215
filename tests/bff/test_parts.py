"""Parts are declared once: a fourth service is one `Part` and its settings, nothing else;
and each element of a declaration (path prefix, body type, the ids in a body, what a 404
means) is what the client calls and checks (declarations built here, not the gateway's
three, which are built at import)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import pytest
from aiohttp import web
from bff_support import Mocks, server_timing, stand_in
from call_support import endpoint
from pytest_aiohttp import AiohttpClient, AiohttpServer

from bff.app import create_app
from bff.errors import DownstreamUnavailable
from bff.models import Inventory, Review, ReviewSummary
from bff.parts import PARTS, Part
from bff.settings import Settings


class Wishlist(msgspec.Struct, frozen=True, rename="camel"):
    product_id: str
    wishes: int


def _merge(value: Wishlist | None) -> Mapping[str, Any]:
    return {"wishes": None if value is None else value.wishes}


WISHLIST: Part[Wishlist] = Part(
    "wishlist", "/wishlist/", Wishlist, lambda w: (w.product_id,), _merge
)


async def _wishlist_service(aiohttp_server: AiohttpServer, *, fail: bool = False) -> str:
    calls: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        calls.append(request.match_info["id"])
        if fail:
            return web.Response(status=503)
        product_id = request.match_info["id"]
        return web.json_response({"productId": product_id, "wishes": 7})

    server = await stand_in(aiohttp_server, answer, "/wishlist/{id}")
    return str(server.make_url("")).rstrip("/")


async def _bff_with_wishlist(aiohttp_client: AiohttpClient, mocks: Mocks, url: str) -> Any:
    parts = (*PARTS, WISHLIST)
    # Its settings come from its own variable, as a declared part's do.
    settings = Settings.from_env({**mocks.env(), "BFF_WISHLIST_URL": url}, parts=parts)
    return await aiohttp_client(create_app(settings, parts=parts))


class TestAFourthPart:
    """A `Part` declared in a test, with its service's settings, is called, merged into the
    answer, timed in Server-Timing, degraded like any optional part, and selectable."""

    async def test_the_answer_carries_the_fourth_part(
        self, aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer, mocks: Mocks
    ) -> None:
        url = await _wishlist_service(aiohttp_server)
        bff = await _bff_with_wishlist(aiohttp_client, mocks, url)
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
            body = await resp.json()
            timing = server_timing(resp.headers["Server-Timing"])
        assert body["wishes"] == 7
        assert body["product"]["id"] == "P001"
        assert body["degraded"] == {}
        assert "wishlist" in timing
        assert "desc" not in timing["wishlist"]

    async def test_a_failing_fourth_part_degrades_the_answer(
        self, aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer, mocks: Mocks
    ) -> None:
        url = await _wishlist_service(aiohttp_server, fail=True)
        bff = await _bff_with_wishlist(aiohttp_client, mocks, url)
        async with bff.get("/product-details/P001") as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["wishes"] is None
        assert body["degraded"] == {"wishlist": "unavailable"}

    async def test_include_knows_the_fourth_part(
        self, aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer, mocks: Mocks
    ) -> None:
        url = await _wishlist_service(aiohttp_server)
        bff = await _bff_with_wishlist(aiohttp_client, mocks, url)
        async with bff.get("/product-details/P001?include=wishlist") as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["wishes"] == 7
        assert "reviews" not in body
        assert "inventory" not in body


class TestDeclarations:
    """Every part names the keys it puts in the answer; only the product is required."""

    def test_keys_of_the_declared_parts(self) -> None:
        assert {p.name: p.keys for p in PARTS} == {
            "product": ("product",),
            "reviews": ("reviews", "reviewSummary"),
            "inventory": ("inventory",),
        }
        assert [p.name for p in PARTS if p.required] == ["product"]


def _none() -> Inventory:
    return Inventory("none", 0)


class TestDeclaration:
    """Path, decoding, the id check and the meaning of a 404, as declared."""

    def test_every_part_is_used(self) -> None:
        stock = endpoint(
            "/stock/",
            Inventory,
            lambda i: (i.product_id,),
            on_404=_none,
            not_found=DownstreamUnavailable,
        )
        assert (
            stock.prefix == "/stock/"
        )  # a call asks for prefix + id (test_request_sent_downstream)
        assert stock.decode(b'{"productId":"P001","stock":3}', "P001") == Inventory("P001", 3)
        assert stock.on_404 is _none
        assert stock.not_found is DownstreamUnavailable

    def test_an_answer_about_another_id_says_which(self) -> None:
        stock: Part[Inventory] = endpoint("/stock/", Inventory, lambda i: (i.product_id,))
        with pytest.raises(msgspec.ValidationError) as refused:
            stock.decode(b'{"productId":"P002","stock":3}', "P001")
        assert str(refused.value) == "asked for 'P001', got 'P002'"

    def test_the_body_type_is_enforced(self) -> None:
        stock: Part[Inventory] = endpoint("/stock/", Inventory, lambda i: (i.product_id,))
        with pytest.raises(msgspec.ValidationError):
            stock.decode(b'{"productId":"P001","stock":-1}', "P001")


class TestWhatEachPartPutsInTheAnswer:
    """The gateway's own three merges: the keys and values a frontend reads."""

    @staticmethod
    def merged(name: str, value: Any) -> Mapping[str, Any]:
        return next(p for p in PARTS if p.name == name).merge(value)

    def test_reviews_and_their_summary_rounded_to_two_places(self) -> None:
        reviews = [
            Review(product_id="P1", rating=rating, comment="", author="a") for rating in (5, 4, 4)
        ]
        merged = self.merged("reviews", reviews)
        assert dict(merged) == {
            "reviews": reviews,
            "reviewSummary": ReviewSummary(count=3, average_rating=4.33),
        }

    @pytest.mark.parametrize("value", [None, []])
    def test_no_reviews_or_degraded_reviews_summarise_to_nothing(self, value: Any) -> None:
        assert dict(self.merged("reviews", value)) == {
            "reviews": [],
            "reviewSummary": ReviewSummary(count=0, average_rating=None),
        }

    def test_stock_unknown_is_null_not_zero(self) -> None:
        stock = Inventory(product_id="P1", stock=3)
        assert dict(self.merged("inventory", stock)) == {"inventory": stock}
        assert dict(self.merged("inventory", None)) == {"inventory": None}
