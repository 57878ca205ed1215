"""A downstream answer is used only if it is what we asked for and no larger than its cap.

Both checks live in the client (`bff.client`): every id in the decoded body must be the id
asked for, and the body is read under the service's byte cap (its settings'
`max_body_bytes`), which counts every byte we would hold, whatever the framing: a declared
length over the cap is refused before reading; a body without a length (chunked) or a
compressed one is counted as it is decoded, across all its chunks, and refused once the
total passes the cap. Below the cap the body comes back whole and unchanged. Either failure
is a `bad_response`: the product's makes the answer a 502, an optional part's makes it
`degraded`.

A compressed body declares its compressed length: a few KB of gzip can decode to gigabytes, and
a cap that trusted the declared length would let one hostile answer take a worker's memory."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from bff_support import MakeBff, Mocks, stand_in
from call_support import get_reviews
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bff.errors import BadResponse
from mock_services import ServiceKind

CAP = 4096


async def body_service(
    aiohttp_server: AiohttpServer, body: bytes, how: str, pause_s: float = 0.005
) -> URL:
    """A service on loopback that answers every GET with `body` (as JSON), framed `how`:
    with its `length`, `chunked` (no length: a client can only count as it reads; `pause_s`
    between chunks, so that the client reads them one by one) or `gzip`."""

    async def handler(request: web.Request) -> web.StreamResponse:
        json = {"Content-Type": "application/json"}
        if how == "gzip":
            return web.Response(
                body=gzip.compress(body), headers={**json, "Content-Encoding": "gzip"}
            )
        if how == "length":
            return web.Response(body=body, headers=json)
        resp = web.StreamResponse(headers=json)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, len(body), 1000):  # small chunks, each well under the cap
            await resp.write(body[start : start + 1000])
            await asyncio.sleep(pause_s)
        await resp.write_eof()
        return resp

    server = await stand_in(aiohttp_server, handler, "/{tail:.*}")
    return server.make_url("")


async def fetch(url: URL) -> bytes:
    """The body of a 200, or the reply's error raised."""
    async with aiohttp.ClientSession() as session:
        reply = await get_reviews(session, url, max_body_bytes=CAP)
    if reply.error is not None:
        raise reply.error
    assert reply.status == 200
    return reply.body


class TestOverTheCap:
    """Refused as the service's bad response, saying how large and which cap."""

    async def test_a_declared_length(self, aiohttp_server: AiohttpServer) -> None:
        instance = await body_service(aiohttp_server, b"x" * (CAP + 1), "length")
        with pytest.raises(BadResponse) as refused:
            await fetch(instance)
        assert str(refused.value) == (
            "reviews: bad_response (body of 4097 bytes exceeds the 4096-byte cap)"
        )

    @pytest.mark.parametrize("how", ["chunked", "gzip"])
    async def test_counted_while_reading(self, aiohttp_server: AiohttpServer, how: str) -> None:
        instance = await body_service(aiohttp_server, b"x" * (3 * CAP), how)
        with pytest.raises(BadResponse) as refused:
            await fetch(instance)
        assert str(refused.value) == "reviews: bad_response (body exceeds the 4096-byte cap)"


class TestUnderTheCap:
    """Whole and unchanged, however it was framed; exactly the cap is still allowed."""

    @pytest.mark.parametrize("how", ["length", "chunked", "gzip"])
    async def test_whole(self, aiohttp_server: AiohttpServer, how: str) -> None:
        # Exactly the cap: a reviews list padded with JSON's own whitespace.
        body = b'[{"productId":"P001","rating":5,"comment":"ok","author":"A"}'
        body += b" " * (CAP - len(body) - 1) + b"]"
        assert await fetch(await body_service(aiohttp_server, body, how)) == body


ServeBody = Callable[[bytes, bool], Awaitable[str]]


@pytest.fixture
def fake_service(aiohttp_server: AiohttpServer) -> ServeBody:
    """A service on loopback that answers every GET with `body`; chunked when asked (no
    Content-Length, so the client cannot refuse it up front and must count as it reads)."""

    async def serve(body: bytes, chunked: bool) -> str:
        how = "chunked" if chunked else "length"
        return str(await body_service(aiohttp_server, body, how, pause_s=0)).rstrip("/")

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
