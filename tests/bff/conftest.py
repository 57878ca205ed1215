"""Fixtures for the BFF's tests: real mock services on loopback and a BFF pointed at them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from bff_support import KINDS, BffClient, LogLines, MakeBff, Mocks
from pytest_aiohttp import AiohttpClient, AiohttpServer
from runner_support import Serve
from settings_support import tuned

from bff.admin import create_admin_app
from bff.app import create_app
from bff.keys import LIFECYCLE, SETTINGS
from bff.observability.logging import processors_for
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
        yield Mocks(servers, session, aiohttp_server)


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
def make_uncached_bff(make_bff: MakeBff) -> MakeBff:
    """`make_bff` with the part cache off: for tests of what live calls do (retries, breakers,
    instances, bulkheads), which a stored copy would answer instead (the cache in the request
    path: tests/bff/cache/test_caching.py)."""

    async def make(fields: Mapping[str, Any] | None = None, **env: Any) -> BffClient:
        return await make_bff(fields, **{"BFF_CACHE": "off", **env})

    return make


@pytest.fixture
async def uncached_bff(make_uncached_bff: MakeBff) -> BffClient:
    return await make_uncached_bff()


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
    """Start the BFF with the production runner (`python -m bff`'s: our protocol class, the
    server limits) on 127.0.0.1, a free port, in the test's loop, from environment variables
    and `fields` as `make_bff` takes them; returns its base URL (`app_of(url)`: its app).
    The mocks answer in 5 ms. (The heap is settled as a worker's is, for every test module:
    tests/conftest.py.)"""
    runners: list[web.AppRunner] = []

    async def start(fields: Mapping[str, Any] | None = None, **env: str) -> str:
        settings = tuned(Settings.from_env({**mocks.env(), **env}), fields or {})
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


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """Every line logged during the test, parsed as JSON (parsing fails the test otherwise)."""
    buffer = io.BytesIO()
    structlog.configure(
        processors=processors_for("json"),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.BytesLoggerFactory(buffer),
        cache_logger_on_first_use=False,
    )
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    structlog.reset_defaults()
