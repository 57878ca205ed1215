"""Service discovery: a downstream named by a host that resolves to several addresses is
several instances, kept in step with DNS (bff.resilience.discovery); then the whole BFF with
a downstream found by name: `BFF_REVIEWS_URL=http://reviews.test:PORT` where the name lists
two loopback addresses, each a real reviews mock (bff.app wires the discovery; the name's
answers come from an injected resolver)."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler, Middleware
from bff_support import BffClient
from pytest_aiohttp import AiohttpClient, AiohttpServer
from yarl import URL

from bff.app import create_app
from bff.keys import CLIENTS
from bff.resilience.discovery import ServiceDiscovery, discovering
from bff.resilience.pool import InstancePool
from bff.settings import OutlierSettings, Settings
from mock_services import create_service_app


class FakeDns(AbstractResolver):
    """Answers from a table that tests change; a name mapped to an exception raises it."""

    def __init__(self, table: dict[str, list[str] | Exception]) -> None:
        self.table = table
        self.asked: Counter[str] = Counter()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked[host] += 1
        answer = self.table.get(host, OSError(f"{host}: no such name"))
        if isinstance(answer, Exception):
            raise answer
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in answer
        ]

    async def close(self) -> None:
        pass


def discovery(dns: FakeDns, *urls: str, refresh_s: float = 10.0) -> ServiceDiscovery:
    parsed = tuple(URL(u) for u in urls)
    pool = InstancePool(parsed, OutlierSettings())
    return ServiceDiscovery("reviews", parsed, pool, dns, refresh_s)


def urls_of(d: ServiceDiscovery) -> list[str]:
    return sorted(str(i.base_url) for i in d._pool.instances)


class TestResolution:
    """One instance per address; the name kept for the Host header."""

    async def test_a_name_with_three_addresses_is_three_instances(self) -> None:
        dns = FakeDns({"reviews.svc": ["10.0.0.3", "10.0.0.1", "10.0.0.2"]})
        d = discovery(dns, "http://reviews.svc:8082/api")
        await d.refresh()
        assert urls_of(d) == [f"http://10.0.0.{n}:8082/api" for n in (1, 2, 3)]
        assert {i.host_header for i in d._pool.instances} == {"reviews.svc:8082"}

    async def test_addresses_are_never_resolved(self) -> None:
        dns = FakeDns({})
        d = discovery(dns, "http://127.0.0.1:8082", "http://[::1]:8082")
        assert not d.enabled
        await d.refresh()
        assert dns.asked == Counter()
        assert urls_of(d) == ["http://127.0.0.1:8082", "http://[::1]:8082"]
        assert all(i.host_header is None for i in d._pool.instances)

    async def test_ipv4_is_preferred_and_ipv6_only_names_work(self) -> None:
        dns = FakeDns({"both": ["::1", "127.0.0.1"], "v6": ["fd00::2", "fd00::1"]})
        d = discovery(dns, "http://both:8082", "http://v6:9000")
        await d.refresh()
        assert urls_of(d) == [
            "http://127.0.0.1:8082",
            "http://[fd00::1]:9000",
            "http://[fd00::2]:9000",
        ]

    @pytest.mark.parametrize(
        ("order", "shared_host"), [(("a", "b"), "a.svc:80"), (("b", "a"), "b.svc:80")]
    )
    async def test_two_names_for_one_address_are_one_instance_named_by_the_first(
        self, order: tuple[str, str], shared_host: str
    ) -> None:
        """The address both names resolve to is called once per attempt, with `Host` of the
        name configured first."""
        dns = FakeDns({"a.svc": ["10.0.0.1", "10.0.0.2"], "b.svc": ["10.0.0.2"]})
        d = discovery(dns, *(f"http://{name}.svc:80" for name in order))
        await d.refresh()
        assert urls_of(d) == ["http://10.0.0.1", "http://10.0.0.2"]
        hosts = {str(i.base_url): i.host_header for i in d._pool.instances}
        assert hosts == {"http://10.0.0.1": "a.svc:80", "http://10.0.0.2": shared_host}

    async def test_a_name_that_never_resolved_stays_as_configured(self) -> None:
        """aiohttp then resolves it per connection: no worse than without discovery."""
        d = discovery(FakeDns({}), "http://later.svc:8082")
        await d.refresh()
        assert urls_of(d) == ["http://later.svc:8082"]
        assert d._pool.instances[0].host is None


class TestRefresh:
    """Vanished addresses leave, new ones join, a failed lookup keeps the last good set."""

    async def test_instances_follow_the_answers(self) -> None:
        dns = FakeDns({"svc": ["10.0.0.1", "10.0.0.2"]})
        d = discovery(dns, "http://svc:80")
        await d.refresh()
        kept = next(i for i in d._pool.instances if i.base_url.host == "10.0.0.2")
        kept.ejections, kept.in_flight = 2, 3
        dns.table["svc"] = ["10.0.0.2", "10.0.0.3"]
        await d.refresh()
        assert urls_of(d) == ["http://10.0.0.2", "http://10.0.0.3"]
        # The same instance object, with its state: not a fresh one in its place.
        assert kept in d._pool.instances
        assert (kept.ejections, kept.in_flight) == (2, 3)

    @pytest.mark.parametrize("failure", [OSError("SERVFAIL"), TimeoutError(), []])
    async def test_a_failed_or_empty_lookup_keeps_the_last_good_set(self, failure: Any) -> None:
        dns = FakeDns({"svc": ["10.0.0.1", "10.0.0.2"]})
        d = discovery(dns, "http://svc:80")
        await d.refresh()
        before = d._pool.instances
        dns.table["svc"] = failure
        await d.refresh()
        assert d._pool.instances is before

    async def test_a_hung_resolver_does_not_stall_the_refresh(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        class Hung(FakeDns):
            async def resolve(self, *args: Any, **kwargs: Any) -> list[ResolveResult]:
                await asyncio.sleep(3600)
                return []

        monkeypatch.setattr("bff.resilience.discovery._RESOLVE_TIMEOUT_S", 0.05)
        d = discovery(Hung({}), "http://svc:80")
        async with asyncio.timeout(5):
            await d.refresh()
        assert urls_of(d) == ["http://svc"]

    async def test_names_are_resolved_again_every_period(self) -> None:
        dns = FakeDns({"svc": ["10.0.0.1"]})
        d = discovery(dns, "http://svc:80", refresh_s=0.02)
        await d.refresh()
        d.start()
        try:
            dns.table["svc"] = ["10.0.0.1", "10.0.0.9"]
            async with asyncio.timeout(5):
                while len(d._pool.instances) < 2:  # noqa: ASYNC110 - polling the pool is the point
                    await asyncio.sleep(0.01)
            assert dns.asked["svc"] >= 2
        finally:
            await d.stop()
        asked = dns.asked["svc"]
        await asyncio.sleep(0.1)
        assert dns.asked["svc"] == asked  # stopped means stopped

    def test_a_pool_is_never_emptied(self) -> None:
        pool = InstancePool((URL("http://svc:80"),), OutlierSettings())
        with pytest.raises(ValueError, match="at least one instance"):
            pool.replace_instances([])

    async def test_zero_refresh_turns_discovery_off(self) -> None:
        d = discovery(FakeDns({"svc": ["10.0.0.1"]}), "http://svc:80", refresh_s=0)
        assert not d.enabled
        d.start()
        assert d._task is None


class TestDiscovering:
    """The app's entry point: every service discovered for the lifetime of a block."""

    async def test_resolves_first_then_refreshes_then_stops(self) -> None:
        dns = FakeDns({"svc": ["10.0.0.1", "10.0.0.2"]})
        named = InstancePool((URL("http://svc:80"),), OutlierSettings())
        static = InstancePool((URL("http://127.0.0.1:80"),), OutlierSettings())
        services = [("reviews", (URL("http://svc:80"),), named)]
        services.append(("product", (URL("http://127.0.0.1:80"),), static))
        async with discovering(services, refresh_s=0.02, resolver=dns) as found:
            # Resolved before the block's first line: the first requests are balanced.
            assert len(named.instances) == 2
            assert [d.enabled for d in found] == [True, False]
            dns.table["svc"] = ["10.0.0.3"]
            async with asyncio.timeout(5):
                while len(named.instances) != 1:  # noqa: ASYNC110 - polling the pool is the point
                    await asyncio.sleep(0.01)
        asked = dns.asked["svc"]
        await asyncio.sleep(0.1)
        assert dns.asked["svc"] == asked
        assert [str(i.base_url) for i in static.instances] == ["http://127.0.0.1"]

    async def test_the_default_resolver_resolves_localhost(self) -> None:
        """aiohttp's own resolver (getaddrinfo): `localhost` is one IPv4 instance."""
        pool = InstancePool((URL("http://localhost:8082"),), OutlierSettings())
        async with discovering([("reviews", (URL("http://localhost:8082"),), pool)], 10.0):
            assert [str(i.base_url) for i in pool.instances] == ["http://127.0.0.1:8082"]
            assert pool.instances[0].host_header == "localhost:8082"


class TestOnTheWire:
    """Two servers on two loopback addresses under one name both get calls; when the name
    stops listing one, it gets no more."""

    async def test_calls_spread_then_follow_dns(self) -> None:
        seen: Counter[str] = Counter()
        hosts: set[str] = set()

        async def handle(request: web.Request) -> web.Response:
            seen[request.transport.get_extra_info("sockname")[0]] += 1  # type: ignore[union-attr]
            hosts.add(request.headers["Host"])
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/ping", handle)
        first = TestServer(app, host="127.0.0.2")
        await first.start_server()
        port = first.port
        assert port is not None
        second = TestServer(app, host="127.0.0.3", port=first.port)
        await second.start_server()
        dns = FakeDns({"svc.test": ["127.0.0.2", "127.0.0.3"]})
        d = discovery(dns, f"http://svc.test:{first.port}")
        try:
            await d.refresh()
            async with aiohttp.ClientSession() as session:

                async def call() -> None:
                    instance = d._pool.pick()
                    url = instance.base_url.with_path("/ping")
                    headers = {"Host": instance.host_header or ""}
                    async with session.get(url, headers=headers) as resp:
                        assert resp.status == 200

                for _ in range(40):
                    await call()
                assert seen["127.0.0.2"] > 0
                assert seen["127.0.0.3"] > 0
                dns.table["svc.test"] = ["127.0.0.3"]
                await d.refresh()
                seen.clear()
                for _ in range(10):
                    await call()
                assert seen == Counter({"127.0.0.3": 10})
        finally:
            await first.close()
            await second.close()
        assert hosts == {f"svc.test:{port}"}


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
