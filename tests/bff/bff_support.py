"""Helpers for the BFF's tests: the three real mock services on loopback, and a BFF on them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Request
from prometheus_client import REGISTRY

from bff.observability import metrics
from mock_services import ServiceKind

BffClient = TestClient[Request, Any]
MakeBff = Callable[..., Awaitable[BffClient]]
AdminFor = Callable[[BffClient], Awaitable[BffClient]]
KINDS: tuple[ServiceKind, ...] = ("product", "reviews", "inventory")


def counted(metric: str, **labels: str) -> float:
    """A metric's value in this test process, 0 when never counted. Every app a test process
    builds counts into one registry: compare the value before and after. What the apps
    counted is written to the registry first (bff.observability.metrics flushes it once a
    second otherwise)."""
    metrics.flush()
    return REGISTRY.get_sample_value(metric, labels) or 0.0


class Mocks:
    """Real mock services (aiohttp servers on 127.0.0.1) and their admin API."""

    def __init__(self, servers: dict[ServiceKind, TestServer], session: aiohttp.ClientSession):
        self.servers = servers
        self._session = session

    def url(self, kind: ServiceKind) -> str:
        return str(self.servers[kind].make_url("")).rstrip("/")

    async def faults(self, kind: ServiceKind, **fields: Any) -> None:
        async with self._session.put(f"{self.url(kind)}/__faults", json=fields) as resp:
            assert resp.status == 200, await resp.text()

    async def stats(self, kind: ServiceKind) -> dict[str, Any]:
        async with self._session.get(f"{self.url(kind)}/__stats") as resp:
            assert resp.status == 200
            result: dict[str, Any] = await resp.json()
            return result

    async def body(self, kind: ServiceKind, path: str) -> bytes:
        """What the service itself answers to GET `path` (asserting a 200)."""
        async with self._session.get(f"{self.url(kind)}{path}") as resp:
            assert resp.status == 200, path
            return await resp.read()

    async def requests(self, kind: ServiceKind) -> int:
        return int((await self.stats(kind))["requests"])

    async def stop(self, kind: ServiceKind) -> None:
        """Close the service: its port now refuses connections."""
        await self.servers[kind].close()

    def env(self) -> dict[str, str]:
        return {f"BFF_{k.upper()}_URL": self.url(k) for k in KINDS}


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


class MockAdmin:
    """The admin API (`/__faults`, `/__stats`) of one extra mock instance, by its base URL."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self._session = session

    async def faults(self, **fields: Any) -> None:
        async with self._session.put(f"{self.url}/__faults", json=fields) as resp:
            assert resp.status == 200, await resp.text()

    async def requests(self) -> int:
        async with self._session.get(f"{self.url}/__stats") as resp:
            return int((await resp.json())["requests"])


async def get_many(
    client: BffClient, count: int, *, concurrency: int = 10, **kwargs: Any
) -> list[tuple[int, Any]]:
    """`count` GETs of distinct products, `concurrency` at a time: [(status, body)]."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> tuple[int, Any]:
        async with semaphore, client.get(f"/product-details/P{i:04d}", **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)

    return list(await asyncio.gather(*(one(i) for i in range(count))))
