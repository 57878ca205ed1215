"""Helpers for the BFF's tests: the three real mock services on loopback, and a BFF on them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler
from aiohttp.web import Request
from prometheus_client import REGISTRY
from pytest_aiohttp import AiohttpServer

from bff.client import DownstreamClient
from bff.keys import CLIENTS
from bff.observability import metrics
from mock_services import ServiceKind, create_service_app

BffClient = TestClient[Request, Any]
MakeBff = Callable[..., Awaitable[BffClient]]
AdminFor = Callable[[BffClient], Awaitable[BffClient]]
LogLines = Callable[[], list[dict[str, Any]]]  # the `log_lines` fixture
KINDS: tuple[ServiceKind, ...] = ("product", "reviews", "inventory")


def counted(metric: str, **labels: str) -> float:
    """A metric's value in this test process, 0 when never counted. Every app a test process
    builds counts into one registry: compare the value before and after. What the apps
    counted is written to the registry first (bff.observability.metrics flushes it once a
    second otherwise)."""
    metrics.flush()
    return REGISTRY.get_sample_value(metric, labels) or 0.0


class MockService:
    """One running mock service by its base URL, and its admin API (`/__faults`, `/__stats`)."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self._session = session

    async def faults(self, **fields: Any) -> None:
        async with self._session.put(f"{self.url}/__faults", json=fields) as resp:
            assert resp.status == 200, await resp.text()

    async def stats(self) -> dict[str, Any]:
        async with self._session.get(f"{self.url}/__stats") as resp:
            assert resp.status == 200
            result: dict[str, Any] = await resp.json()
            return result

    async def requests(self) -> int:
        return int((await self.stats())["requests"])

    async def last_headers(self) -> dict[str, str]:
        """The headers of the last request the service saw, names lower-cased."""
        recent = (await self.stats())["recent"]
        assert recent, f"{self.url} saw no request"
        return {k.lower(): v for k, v in recent[-1]["headers"].items()}

    async def body(self, path: str) -> bytes:
        """What the service itself answers to GET `path` (asserting a 200)."""
        async with self._session.get(f"{self.url}{path}") as resp:
            assert resp.status == 200, path
            return await resp.read()


class Mocks:
    """The three real mock services (aiohttp servers on 127.0.0.1), one `MockService` each,
    and more instances of a kind on demand (`another`)."""

    def __init__(
        self,
        servers: dict[ServiceKind, TestServer],
        session: aiohttp.ClientSession,
        start: Callable[[web.Application], Awaitable[TestServer]],
    ) -> None:
        self.servers = servers
        self._session = session
        self._start = start
        self._services = {k: MockService(_base_url(s), session) for k, s in servers.items()}

    def url(self, kind: ServiceKind) -> str:
        return self._services[kind].url

    def service(self, kind: ServiceKind) -> MockService:
        return self._services[kind]

    async def another(self, kind: ServiceKind, **app_options: Any) -> MockService:
        """One more instance of `kind` (`create_service_app` options), not in `env()`."""
        server = await self._start(create_service_app(kind, **app_options))
        return MockService(_base_url(server), self._session)

    async def faults(self, kind: ServiceKind, **fields: Any) -> None:
        await self._services[kind].faults(**fields)

    async def stats(self, kind: ServiceKind) -> dict[str, Any]:
        return await self._services[kind].stats()

    async def body(self, kind: ServiceKind, path: str) -> bytes:
        return await self._services[kind].body(path)

    async def requests(self, kind: ServiceKind) -> int:
        return await self._services[kind].requests()

    async def calls(self) -> dict[ServiceKind, int]:
        """Requests each of the three services served so far."""
        return {kind: await self.requests(kind) for kind in KINDS}

    async def last_headers(self, kind: ServiceKind) -> dict[str, str]:
        return await self._services[kind].last_headers()

    async def stop(self, kind: ServiceKind) -> None:
        """Close the service: its port now refuses connections."""
        await self.servers[kind].close()

    def env(self) -> dict[str, str]:
        return {f"BFF_{k.upper()}_URL": self.url(k) for k in KINDS}


def _base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def stand_in(
    aiohttp_server: AiohttpServer, handler: Handler, route: str = "/{tail:.*}"
) -> TestServer:
    """A service of the test's own on loopback: GET `route` (any path by default) answered
    by `handler`, for an answer no mock service gives."""
    app = web.Application()
    app.router.add_get(route, handler)
    return await aiohttp_server(app)


async def timed_get(
    client: BffClient, path: str, **kwargs: Any
) -> tuple[aiohttp.ClientResponse, Any, float]:
    """GET and return (response, decoded body, seconds the round trip took)."""
    started = time.perf_counter()
    async with client.get(path, **kwargs) as resp:
        body = await resp.json(content_type=None)
    return resp, body, time.perf_counter() - started


def server_timing(header: str) -> dict[str, dict[str, str]]:
    """Parse `Server-Timing` into {name: {"dur": ..., "desc": ...}}."""
    entries: dict[str, dict[str, str]] = {}
    for raw in header.split(","):
        name, *params = (p.strip() for p in raw.split(";"))
        fields = {}
        for param in params:
            key, _, value = param.partition("=")
            fields[key] = value.strip('"')
        entries[name] = fields
    return entries


def total_ms(resp: aiohttp.ClientResponse) -> float:
    """The answer's time as the BFF measured it, from the request's arrival: Server-Timing's
    `total`, in ms."""
    return float(server_timing(resp.headers["Server-Timing"])["total"]["dur"])


def clients_of(bff: BffClient) -> Mapping[str, DownstreamClient]:
    """The downstream clients of the app behind `bff`, by service."""
    return bff.server.app[CLIENTS]


def degraded(results: list[tuple[int, Any]]) -> Counter[str]:
    """How often each reason of `degraded` came in these answers (`get_many`'s results)."""
    return Counter(
        r for status, body in results if status == 200 for r in body["degraded"].values()
    )


async def get_answer(
    bff: BffClient, path: str = "/product-details/P001", **kwargs: Any
) -> tuple[aiohttp.ClientResponse, Any]:
    """GET `path`: the response and its decoded body (None for a 304)."""
    async with bff.get(path, **kwargs) as resp:
        body = await resp.json(content_type=None) if resp.status != 304 else None
        return resp, body


async def statuses(
    client: BffClient, headers: Sequence[Mapping[str, str]], path: str = "/product-details/P001"
) -> list[int]:
    """One GET of `path` per item of `headers`, one after the other: their statuses."""
    out = []
    for sent in headers:
        async with client.get(path, headers=sent) as resp:
            await resp.read()
            out.append(resp.status)
    return out


async def get_many(
    client: BffClient, count: int, *, concurrency: int = 10, **kwargs: Any
) -> list[tuple[int, Any]]:
    """`count` GETs of distinct products, `concurrency` at a time: [(status, body)]."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> tuple[int, Any]:
        async with semaphore, client.get(f"/product-details/P{i:04d}", **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)

    return list(await asyncio.gather(*(one(i) for i in range(count))))
