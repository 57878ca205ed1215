"""Each private API in `bff._compat` still does what we rely on: an upgrade of aiohttp,
prometheus_client or limits that changes one fails here, by name, not somewhere downstream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server
from edge_support import raw_request
from limits import RateLimitItemPerSecond
from limits.aio import storage as aio_storage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from prometheus_client import Histogram
from runner_support import Serve

from bff import _compat
from bff._compat import (
    CompatError,
    InlineExpiryMemoryStorage,
    disable_silent_resend,
    histogram_add,
    redis_pool_of,
    swap_class,
)
from bff.edge.protocol import BffRequestHandler, BffServer


@pytest.fixture
async def hang_up() -> AsyncIterator[tuple[str, list[int]]]:
    """A server that reads each request head and closes the connection without answering;
    it counts the requests it saw."""
    seen = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        seen[0] += 1
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/", seen


class TestAiohttpClient:
    """aiohttp re-sends an idempotent request once on a dropped connection unless told not to."""

    async def test_the_silent_resend_exists_and_is_switched_off(
        self, hang_up: tuple[str, list[int]]
    ) -> None:
        url, seen = hang_up
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await plain.get(url)
        assert seen[0] == 2  # aiohttp's hidden retry: what we switch off
        seen[0] = 0
        async with aiohttp.ClientSession() as ours:
            disable_silent_resend(ours)
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await ours.get(url)
        assert seen[0] == 1

    async def test_a_session_without_the_switch_is_refused_loudly(self) -> None:
        async with aiohttp.ClientSession() as session:
            session._retry_connection = "renamed"  # type: ignore[assignment]
            with pytest.raises(CompatError, match="_retry_connection"):
                disable_silent_resend(session)


class TestAiohttpServer:
    """The runner's Server and its protocol become ours, and parser errors reach our
    `handle_error`."""

    async def test_parser_errors_reach_our_handler(self, serve: Serve) -> None:
        answer = await raw_request(await serve(), b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.status == 400
        assert answer.header("Content-Type") == "application/problem+json"

    async def test_the_swap_keeps_the_object_and_changes_its_class(self) -> None:
        server = swap_class(aiohttp.web_server.Server(handler=_no_handler), BffServer)
        assert type(server) is BffServer
        assert type(server()) is BffRequestHandler

    async def test_a_class_that_would_change_the_layout_is_refused(self) -> None:
        class WithSlots(aiohttp.web_server.Server):
            __slots__ = ("extra",)

        with pytest.raises(CompatError, match="no slots"):
            swap_class(aiohttp.web_server.Server(handler=_no_handler), WithSlots)


async def _no_handler(request: Any) -> Any:
    raise AssertionError("not called")


class TestPrometheusHistogram:
    """`histogram_add` puts many observations into one bucket (the library keeps each
    bucket's own count) and adds to the sum, as that many `observe()` calls would."""

    def test_many_at_once_equal_one_at_a_time(self) -> None:
        bounds = (0.1, 1.0)
        one = Histogram("compat_probe_one", "probe", buckets=bounds, registry=None)
        many = Histogram("compat_probe_many", "probe", buckets=bounds, registry=None)
        for value in (0.05, 0.05, 0.05, 0.5, 3.0):
            one.observe(value)
        histogram_add(many, 0, 3)  # three at or under 0.1
        histogram_add(many, 1, 1)  # one under 1.0
        histogram_add(many, 2, 1)  # one past every bound: +Inf
        histogram_add(many, 3, 0.05 * 3 + 0.5 + 3.0)  # one past the last bucket: the sum

        def samples(h: Histogram) -> list[tuple[str, dict[str, str], float]]:
            return [(s.name.split("_", 3)[-1], s.labels, s.value) for s in h.collect()[0].samples]

        got = {
            (n, tuple(sorted(lb.items()))): v for n, lb, v in samples(many) if "created" not in n
        }
        want = {
            (n, tuple(sorted(lb.items()))): v for n, lb, v in samples(one) if "created" not in n
        }
        assert got == pytest.approx(want)


class TestLimits:
    """MemoryStorage calls its private expiry hook before every hit (ours starts no thread),
    and its private trim drops expired windows."""

    class Counting(InlineExpiryMemoryStorage):
        def __init__(self) -> None:
            super().__init__()
            self.hits = 0

        def on_hit(self) -> None:
            self.hits += 1

    @pytest.mark.parametrize("strategy", [MovingWindowRateLimiter, FixedWindowRateLimiter])
    def test_the_hook_runs_before_every_hit_and_no_timer_starts(self, strategy: Any) -> None:
        storage = self.Counting()
        first = storage.timer  # the one MemoryStorage.__init__ started, cancelled
        limiter = strategy(storage)
        for _ in range(5):
            limiter.hit(RateLimitItemPerSecond(10, 1), "client")
        assert storage.hits >= 5
        assert storage.timer is first
        assert first.finished.is_set()

    def test_expire_drops_windows_past_their_end(self) -> None:
        storage = InlineExpiryMemoryStorage()
        FixedWindowRateLimiter(storage).hit(RateLimitItemPerSecond(10, 1), "client")
        assert storage.storage  # one counter
        for key in storage.expirations:
            storage.expirations[key] = time.time() - 1
        storage.expire()
        assert not storage.storage

    def test_the_redis_client_pool_is_reachable(self) -> None:
        storage = aio_storage.RedisStorage("async+redis://127.0.0.1:1")
        assert callable(redis_pool_of(storage).disconnect)


async def _ok(request: web.BaseRequest) -> web.StreamResponse:
    return web.Response(text="ok")


class TestReceiveTime:
    """What `bff.edge.protocol` reads to stamp when a request's bytes arrived."""

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
