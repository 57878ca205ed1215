"""The private aiohttp APIs of bff._compat still exist and mean what we rely on.

An aiohttp upgrade that renames or changes one of them fails here, by name, instead of
silently turning a feature off (a deadline that stops counting queueing, for one).
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from bff import _compat
from bff.edge.arrival import BffRequestHandler


async def _ok(request: web.BaseRequest) -> web.StreamResponse:
    return web.Response(text="ok")


class TestServerSide:
    async def test_a_server_builds_our_protocol_class_with_its_own_arguments(self) -> None:
        """`Server` keeps its loop and handler kwargs where `new_request_handler` reads them."""
        server = Server(_ok, loop=asyncio.get_running_loop(), keepalive_timeout=7.5)
        handler = _compat.new_request_handler(server, BffRequestHandler)
        assert type(handler) is BffRequestHandler
        assert handler._keepalive_timeout == 7.5

    async def test_idle_means_no_request_queued_nor_in_progress(self) -> None:
        """A fresh connection is idle; while its request is handled it is not."""
        seen: list[bool] = []

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            assert isinstance(request.protocol, RequestHandler)
            seen.append(_compat.connection_idle(request.protocol))
            return web.Response(text="ok")

        server = Server(handler, loop=asyncio.get_running_loop())
        assert _compat.connection_idle(server()) is True
        runner = web.ServerRunner(server)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/") as resp,
            ):
                assert resp.status == 200
        finally:
            await runner.cleanup()
        assert seen == [False]
