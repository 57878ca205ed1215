"""Fixtures of the browser tests: one headless chromium per module, and the whole stack per
test: the three mocks (reference latencies) with their fault lab, the BFF with its admin
listener (CORS allowing the storefront's origin, as `make run` sets it), and the storefront."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from browser_support import chromium
from selenium.webdriver.remote.webdriver import WebDriver
from server_thread_support import ServerThread, bound_socket, url_of

from bff.admin import create_admin_app
from bff.app import create_app
from bff.keys import CLIENTS, LIFECYCLE
from bff.server import make_runner
from bff.settings import Settings
from mock_services import ServiceKind, create_service_app
from mock_services.lab import create_lab_app
from mock_services.state import SERVICE_STATE, ServiceState
from storefront import create_storefront_app

KINDS: tuple[ServiceKind, ...] = ("product", "reviews", "inventory")


@dataclass
class Stack:
    servers: ServerThread
    mocks: dict[ServiceKind, ServiceState]
    mock_urls: dict[ServiceKind, str]
    bff_app: Any
    bff: str
    admin: str
    lab: str
    storefront: str

    def breaker(self, service: str) -> str:
        state: str = self.bff_app[CLIENTS][service].breaker.state
        return state


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    yield from chromium()


def start_stack(env: dict[str, str] | None = None) -> Stack:
    servers = ServerThread()
    try:
        apps = {kind: create_service_app(kind) for kind in KINDS}
        mock_urls = {kind: servers.serve(app) for kind, app in apps.items()}
        mocks = {kind: app[SERVICE_STATE] for kind, app in apps.items()}
        lab = servers.serve(create_lab_app({k: (mocks[k], mock_urls[k]) for k in KINDS}))
        storefront_sock, bff_sock = bound_socket(), bound_socket()
        settings = Settings.from_env(
            {
                **{f"BFF_{k.upper()}_URL": url for k, url in mock_urls.items()},
                "BFF_CORS_ORIGINS": url_of(storefront_sock),
                **(env or {}),
            }
        )
        bff_app = create_app(settings)

        def runner(app: Any) -> Any:
            return make_runner(app, settings)

        bff = servers.serve(bff_app, bff_sock, runner)
        admin_app = create_admin_app(settings, bff_app[LIFECYCLE], public=bff_app)
        admin = servers.serve(admin_app, runner=runner)
        storefront = servers.serve(create_storefront_app(bff), storefront_sock)
    except BaseException:
        servers.close()
        raise
    return Stack(servers, mocks, mock_urls, bff_app, bff, admin, lab, storefront)


@pytest.fixture
def stack() -> Iterator[Stack]:
    running = start_stack()
    try:
        yield running
    finally:
        running.servers.close()
