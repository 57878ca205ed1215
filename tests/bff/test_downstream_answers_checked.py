"""A downstream answer is used only if it is what we asked for and no larger than its cap.

Both checks live in the client (`bff.clients`): the body is read under the service's byte cap
(its settings' `max_body_bytes`), whether or not the service says its length up front, and
every id in the decoded body must be the id asked for. Either failure is a `bad_response`: the
product's makes the answer a 502, an optional part's makes it `degraded`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from bff_support import MakeBff, Mocks
from pytest_aiohttp import AiohttpServer

from mock_services import ServiceKind

ServeBody = Callable[[bytes, bool], Awaitable[str]]


@pytest.fixture
def fake_service(aiohttp_server: AiohttpServer) -> ServeBody:
    """A service on loopback that answers every GET with `body`; chunked when asked (no
    Content-Length, so the client cannot refuse it up front and must count as it reads)."""

    async def serve(body: bytes, chunked: bool) -> str:
        async def handler(request: web.Request) -> web.StreamResponse:
            if not chunked:
                return web.Response(body=body, content_type="application/json")
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for start in range(0, len(body), 1024):
                await resp.write(body[start : start + 1024])
            await resp.write_eof()
            return resp

        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        server = await aiohttp_server(app)
        return str(server.make_url("")).rstrip("/")

    return serve


async def details(
    make_bff: MakeBff, fields: dict[str, Any] | None = None, **env: Any
) -> tuple[int, Any]:
    bff = await make_bff(fields, **env)
    async with bff.get("/product-details/P001") as resp:
        return resp.status, await resp.json(content_type=None)


class TestBodyCap:
    """A body larger than the service's cap is refused, never buffered whole and used."""

    async def test_a_product_body_over_the_cap_is_a_502(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        """Pins the cap when the service announces its length (Content-Length)."""
        size = len(await mocks.body("product", "/products/P001"))
        status, body = await details(make_bff, {"product.max_body_bytes": size - 1})
        assert status == 502
        assert body["detail"] == "product: bad_response"
        status, _ = await details(make_bff, {"product.max_body_bytes": size})
        assert status == 200, "a body exactly at the cap is accepted"

    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    async def test_an_optional_part_over_the_cap_is_degraded(
        self, make_bff: MakeBff, mocks: Mocks, fake_service: ServeBody, chunked: bool
    ) -> None:
        """Pins the cap on a streamed body too: the client counts the bytes as they arrive."""
        real = await mocks.body("reviews", "/reviews/P001")
        padded = real[:-1] + b" " * 20_000 + b"]"  # still valid JSON, the same reviews
        url = await fake_service(padded, chunked)
        status, body = await details(
            make_bff, {"reviews.max_body_bytes": 16_000}, BFF_REVIEWS_URL=url
        )
        assert status == 200
        assert body["degraded"] == {"reviews": "bad_response"}
        assert body["reviews"] == []
        status, body = await details(
            make_bff, {"reviews.max_body_bytes": len(padded)}, BFF_REVIEWS_URL=url
        )
        assert (status, body["degraded"]) == (200, {}), "the same body under a larger cap is used"


class TestIdsMatch:
    """An answer about another product is a bad_response: never shown for the one asked."""

    async def test_a_product_about_another_id_is_a_502(
        self, make_bff: MakeBff, mocks: Mocks, fake_service: ServeBody
    ) -> None:
        url = await fake_service(await mocks.body("product", "/products/P002"), False)
        status, body = await details(make_bff, BFF_PRODUCT_URL=url)
        assert status == 502
        assert body["detail"] == "product: bad_response"

    @pytest.mark.parametrize(
        ("kind", "prefix"), [("reviews", "/reviews/"), ("inventory", "/inventory/")]
    )
    async def test_an_optional_part_about_another_id_is_degraded(
        self,
        make_bff: MakeBff,
        mocks: Mocks,
        fake_service: ServeBody,
        kind: ServiceKind,
        prefix: str,
    ) -> None:
        other = await mocks.body(kind, f"{prefix}P002")
        assert b"P002" in other, "the mock's body names its product"
        url = await fake_service(other, False)
        status, body = await details(make_bff, **{f"BFF_{kind.upper()}_URL": url})
        assert status == 200
        assert body["degraded"] == {kind: "bad_response"}
        assert b"P002" not in repr(body).encode()
