"""Fixtures for the mock services' own tests: real apps on loopback via `aiohttp_client`."""

from __future__ import annotations

import pytest
from mock_support import MakeMock, MockClient
from pytest_aiohttp import AiohttpClient

from mock_services import FaultSettings, ServiceKind, create_service_app


@pytest.fixture
def make_mock(aiohttp_client: AiohttpClient) -> MakeMock:
    """Start a mock service (latency scale 0 unless told otherwise) and return its client."""

    async def make(
        kind: ServiceKind,
        *,
        latency_scale: float = 0.0,
        seed_faults: FaultSettings | None = None,
    ) -> MockClient:
        app = create_service_app(kind, latency_scale=latency_scale, seed_faults=seed_faults)
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def product(make_mock: MakeMock) -> MockClient:
    return await make_mock("product")


@pytest.fixture
async def reviews(make_mock: MakeMock) -> MockClient:
    return await make_mock("reviews")


@pytest.fixture
async def inventory(make_mock: MakeMock) -> MockClient:
    return await make_mock("inventory")
