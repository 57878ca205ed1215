"""The byte cap on a downstream body counts every byte we would hold, whatever the framing: a
declared length over the cap is refused before reading; a body without a length (chunked) or
a compressed one is counted as it is decoded, across all its chunks, and refused once the
total passes the cap. Below the cap the body comes back whole and unchanged.

A compressed body declares its compressed length: a few KB of gzip can decode to gigabytes, and
a cap that trusted the declared length would let one hostile answer take a worker's memory.
"""

from __future__ import annotations

import asyncio
import gzip

import aiohttp
import pytest
from aiohttp import web
from call_support import get_reviews
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bff.errors import BadResponse

CAP = 4096


async def serve(aiohttp_server: AiohttpServer, body: bytes, how: str) -> URL:
    async def handler(request: web.Request) -> web.StreamResponse:
        if how == "gzip":
            return web.Response(body=gzip.compress(body), headers={"Content-Encoding": "gzip"})
        if how == "length":
            return web.Response(body=body)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, len(body), 1000):  # small chunks, each well under the cap
            await resp.write(body[start : start + 1000])
            await asyncio.sleep(0.005)  # so that the client reads them one by one
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = await aiohttp_server(app)
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
        instance = await serve(aiohttp_server, b"x" * (CAP + 1), "length")
        with pytest.raises(BadResponse) as refused:
            await fetch(instance)
        assert str(refused.value) == (
            "reviews: bad_response (body of 4097 bytes exceeds the 4096-byte cap)"
        )

    @pytest.mark.parametrize("how", ["chunked", "gzip"])
    async def test_counted_while_reading(self, aiohttp_server: AiohttpServer, how: str) -> None:
        instance = await serve(aiohttp_server, b"x" * (3 * CAP), how)
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
        assert await fetch(await serve(aiohttp_server, body, how)) == body
