"""Fixtures for the BFF's tests: real mock services on loopback and a BFF pointed at them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from bff_support import KINDS, BffClient, MakeBff, Mocks
from pytest_aiohttp import AiohttpClient, AiohttpServer
from runner_support import Serve
from settings_support import tuned

from bff.admin import create_admin_app
from bff.app import create_app
from bff.keys import LIFECYCLE, SETTINGS
from bff.server import make_runner
from bff.settings import Settings
from mock_services import create_service_app


@pytest.fixture
async def mocks(aiohttp_server: AiohttpServer) -> AsyncIterator[Mocks]:
    """The three mock services at their reference latencies (50/80/30 ms)."""
    # aiohttp's test servers cancel a handler when its client hangs up, as `python -m
    # mock_services` does: a mock stops working when the BFF gives up on it.
    servers = {k: await aiohttp_server(create_service_app(k)) for k in KINDS}
    async with aiohttp.ClientSession() as session:
        yield Mocks(servers, session)


@pytest.fixture
def make_bff(aiohttp_client: AiohttpClient, mocks: Mocks) -> MakeBff:
    """Build a BFF from environment variables (on top of the mocks' URLs), and `fields`, the
    dotted settings no variable sets (`{"reviews.breaker.min_calls": 3}`); return a client."""

    async def make(fields: Mapping[str, Any] | None = None, **env: Any) -> BffClient:
        settings = Settings.from_env({**mocks.env(), **{k: str(v) for k, v in env.items()}})
        return await aiohttp_client(create_app(tuned(settings, fields or {})))

    return make


@pytest.fixture
async def bff(make_bff: MakeBff) -> BffClient:
    return await make_bff()


@pytest.fixture
def admin_for(aiohttp_client: AiohttpClient) -> Callable[[BffClient], Awaitable[BffClient]]:
    """The admin listener (/healthz, /readyz, /metrics, /status) of a BFF built by `make_bff`,
    sharing its lifecycle and reading its clients, as a worker serves them."""

    async def make(bff: BffClient) -> BffClient:
        app = bff.app
        assert app is not None
        return await aiohttp_client(create_admin_app(app[SETTINGS], app[LIFECYCLE], public=app))

    return make


@pytest.fixture
def served_apps() -> dict[str, web.Application]:
    """The apps `serve` started, by base URL."""
    return {}


@pytest.fixture
def app_of(served_apps: dict[str, web.Application]) -> Callable[[str], web.Application]:
    """The app behind a base URL `serve` returned (to read its admission, clients...)."""
    return served_apps.__getitem__


@pytest.fixture
async def serve(mocks: Mocks, served_apps: dict[str, web.Application]) -> AsyncIterator[Serve]:
    """Start the BFF with the production runner on a free port; returns its base URL. (The
    heap is settled as a worker's is, for every test module: tests/conftest.py.)"""
    runners: list[web.AppRunner] = []

    async def start(**env: str) -> str:
        settings = Settings.from_env({**mocks.env(), **env})
        app = create_app(settings)
        runner = make_runner(app, settings)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        served_apps[url] = app
        return url

    for kind in KINDS:
        await mocks.faults(kind, latency_ms=5)
    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()
