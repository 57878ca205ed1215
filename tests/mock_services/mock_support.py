"""Helpers shared by the mock services' tests (a uniquely named module: not `conftest`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web import Request

from mock_services import ServiceKind

MockClient = TestClient[Request, Any]
MakeMock = Callable[..., Awaitable[MockClient]]

KINDS: list[ServiceKind] = ["product", "reviews", "inventory"]
PATHS: dict[ServiceKind, str] = {
    "product": "/products/{}",
    "reviews": "/reviews/{}",
    "inventory": "/inventory/{}",
}


async def put_faults(client: MockClient, **faults: Any) -> dict[str, Any]:
    """PUT /__faults and return the faults now in force (fails the test on a 400)."""
    async with client.put("/__faults", json=faults) as resp:
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


async def get_json(client: MockClient, path: str) -> Any:
    async with client.get(path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()
