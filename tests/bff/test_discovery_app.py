"""The whole BFF with a downstream found by name: `BFF_REVIEWS_URL=http://reviews.test:PORT`
where the name lists two loopback addresses, each a real reviews mock (bff.app wires
bff.resilience.discovery; the name's answers come from an injected resolver)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler, Middleware
from bff_support import BffClient
from pytest_aiohttp import AiohttpClient, AiohttpServer
from test_discovery import FakeDns

from bff.app import create_app
from bff.keys import CLIENTS
from bff.settings import Settings
from mock_services import create_service_app

NAME = "reviews.test"
FIRST, SECOND = "127.0.0.2", "127.0.0.3"


@dataclass
class Witness:
    """What the two reviews instances saw: calls per address, Host headers, and a gate that
    holds the first instance's answers while a test changes DNS under them."""

    calls: Counter[str] = field(default_factory=Counter)
    hosts: set[str] = field(default_factory=set)
    hold: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def middleware(self) -> Middleware:
        @web.middleware
        async def witness(request: web.Request, handler: Handler) -> web.StreamResponse:
            address = request.transport.get_extra_info("sockname")[0]  # type: ignore[union-attr]
            self.hosts.add(request.headers.get("Host", ""))
            if self.hold and address == FIRST:
                self.arrived.set()
                await self.release.wait()
            response = await handler(request)
            self.calls[address] += 1
            return response

        return witness


@dataclass
class NamedReviews:
    witness: Witness
    dns: FakeDns
    port: int


@pytest.fixture
async def named_reviews() -> AsyncIterator[NamedReviews]:
    witness = Witness()
    servers = []
    port = 0
    for address in (FIRST, SECOND):
        app = create_service_app("reviews", latency_scale=0)
        app.middlewares.append(witness.middleware())
        server = TestServer(app, host=address, port=port)
        await server.start_server()
        port = server.port or 0
        servers.append(server)
    try:
        yield NamedReviews(witness, FakeDns({NAME: [FIRST, SECOND]}), port)
    finally:
        witness.release.set()
        for server in servers:
            await server.close()


async def start_bff(
    aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, named: NamedReviews
) -> tuple[BffClient, web.Application]:
    product = await aiohttp_server(create_service_app("product", latency_scale=0))
    inventory = await aiohttp_server(create_service_app("inventory", latency_scale=0))
    settings = Settings.from_env(
        {
            "BFF_PRODUCT_URL": str(product.make_url("")),
            "BFF_INVENTORY_URL": str(inventory.make_url("")),
            "BFF_REVIEWS_URL": f"http://{NAME}:{named.port}",
            "BFF_DNS_REFRESH_S": "0.02",
            # Wide enough that a held answer is never cut off by a timeout on a busy machine.
            "BFF_DEADLINE_MS": "5000",
            "BFF_REVIEWS_TIMEOUT_MS": "4000",
        }
    )
    client = await aiohttp_client(create_app(settings, resolver=named.dns))
    assert client.app is not None
    return client, client.app


class TestInstancesFoundByName:
    """A downstream URL by name is one instance per address the name resolves to."""

    async def test_both_addresses_get_calls_and_are_called_by_the_name(
        self,
        aiohttp_server: AiohttpServer,
        aiohttp_client: AiohttpClient,
        named_reviews: NamedReviews,
    ) -> None:
        session, app = await start_bff(aiohttp_server, aiohttp_client, named_reviews)
        pool = app[CLIENTS]["reviews"].pool
        # Resolved before the first request: both instances are there from the start.
        assert sorted(str(i.base_url.host) for i in pool.instances) == [FIRST, SECOND]
        for i in range(40):
            async with session.get(f"/product-details/P{i}") as resp:
                body = await resp.json()
                assert resp.status == 200
                assert body["degraded"] == {}
        witness = named_reviews.witness
        assert witness.calls[FIRST] > 0
        assert witness.calls[SECOND] > 0
        assert witness.calls.total() == 40
        assert witness.hosts == {f"{NAME}:{named_reviews.port}"}

    async def test_an_address_that_vanishes_is_drained(
        self,
        aiohttp_server: AiohttpServer,
        aiohttp_client: AiohttpClient,
        named_reviews: NamedReviews,
    ) -> None:
        """It gets no new calls, and the call it has in flight finishes there, unharmed."""
        session, app = await start_bff(aiohttp_server, aiohttp_client, named_reviews)
        witness, dns = named_reviews.witness, named_reviews.dns
        witness.hold = True
        held: asyncio.Task[dict[str, object]] | None = None
        async with asyncio.timeout(30):
            for i in range(100):
                task = asyncio.ensure_future(self._get(session, f"H{i}"))
                arrived = asyncio.ensure_future(witness.arrived.wait())
                await asyncio.wait({task, arrived}, return_when=asyncio.FIRST_COMPLETED)
                arrived.cancel()
                if witness.arrived.is_set():
                    held = task
                    break
                await task
            assert held is not None, "p2c never picked the first instance in 100 calls"
            dns.table[NAME] = [SECOND]
            pool = app[CLIENTS]["reviews"].pool
            while len(pool.instances) != 1:  # noqa: ASYNC110 - polling the pool is the point
                await asyncio.sleep(0.01)
            assert not held.done()
            witness.release.set()
            body = await held
        assert body["degraded"] == {}
        assert witness.calls[FIRST] == 1
        before = witness.calls.copy()
        for i in range(20):
            body = await self._get(session, f"A{i}")
            assert body["degraded"] == {}
        assert witness.calls - before == Counter({SECOND: 20})

    @staticmethod
    async def _get(session: BffClient, pid: str) -> dict[str, object]:
        async with session.get(f"/product-details/{pid}") as resp:
            assert resp.status == 200
            body: dict[str, object] = await resp.json()
            return body
