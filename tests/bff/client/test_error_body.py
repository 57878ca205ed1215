"""An error answer's body is read to its end when it declares a small length (up to 64 KiB),
so the connection goes back to the pool and the next call needs no new handshake. Any other
body (larger, or of no declared length) is not waited for: the error is the answer, whatever
the body does next, and that connection is closed.

The service here sends its bodies in pieces with pauses between them (a drain that read
only what had arrived would leave the rest), and records the client port of each request:
one port for all calls means one connection, reused.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from bff_support import stand_in
from call_support import get_reviews
from pytest_aiohttp import AiohttpServer

from bff import client

CAP = client._ERROR_BODY_CAP


class Service:
    """Answers every GET with a 503 whose body is `size` bytes, with its length declared or
    chunked (`how`), in 4 KiB pieces; `stall` holds the rest of the body after the first."""

    def __init__(self, size: int, how: str, stall: bool = False) -> None:
        self.size, self.how, self.stall = size, how, stall
        self.ports: list[int] = []

    async def handler(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        assert peer is not None
        self.ports.append(peer[1])
        resp = web.StreamResponse(status=503)
        if self.how == "length":
            resp.content_length = self.size
        else:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, self.size, 4096):
            await resp.write(b"e" * min(4096, self.size - start))
            await asyncio.sleep(60 if self.stall else 0.002)
        await resp.write_eof()
        return resp


async def ports_of_three_calls(aiohttp_server: AiohttpServer, service: Service) -> list[int]:
    server = await stand_in(aiohttp_server, service.handler, "/{tail:.*}")
    url = server.make_url("")
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            reply = await get_reviews(session, url)
            assert reply.status == 503
            assert reply.error is not None
            assert reply.error.reason == "unavailable"
    return service.ports


@pytest.mark.parametrize("size", [0, 100, CAP], ids=["empty", "small", "exactly-the-cap"])
async def test_a_small_error_body_is_drained_and_the_connection_reused(
    aiohttp_server: AiohttpServer, size: int
) -> None:
    ports = await ports_of_three_calls(aiohttp_server, Service(size, "length"))
    assert len(ports) == 3
    assert len(set(ports)) == 1


@pytest.mark.parametrize(
    ("size", "how"), [(CAP + 1, "length"), (CAP, "chunked")], ids=["over-the-cap", "chunked"]
)
async def test_any_other_body_is_not_waited_for_and_its_connection_closed(
    aiohttp_server: AiohttpServer, size: int, how: str
) -> None:
    # The service stalls after its first piece: a call that waited for the body would end in
    # our 5 s timeout, not in the 503.
    ports = await ports_of_three_calls(aiohttp_server, Service(size, how, stall=True))
    assert len(set(ports)) == 3
