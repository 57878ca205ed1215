"""The fault lab's server side: its page, and the services' operator routes under its origin.

What the page shows and does in a browser is tested in tests/browser/test_lab.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from mock_support import KINDS, MakeMock, MockClient, get_json
from pytest_aiohttp import AiohttpClient

from mock_services import ServiceKind
from mock_services.lab import create_lab_app
from mock_services.state import SERVICE_STATE, ServiceState


@pytest.fixture
async def services(make_mock: MakeMock) -> dict[ServiceKind, MockClient]:
    return {kind: await make_mock(kind) for kind in KINDS}


@pytest.fixture
async def lab(aiohttp_client: AiohttpClient, services: dict[ServiceKind, MockClient]) -> Any:
    started: dict[ServiceKind, tuple[ServiceState, str]] = {}
    for kind, client in services.items():
        assert client.app is not None
        started[kind] = (client.app[SERVICE_STATE], str(client.make_url("")).rstrip("/"))
    return await aiohttp_client(create_lab_app(started))


class TestPage:
    async def test_serves_the_page_and_its_assets(self, lab: MockClient) -> None:
        async with lab.get("/") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
            html = await resp.text()
        assert '<html lang="en">' in html
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            async with lab.get(asset) as resp:
                assert resp.status == 200, asset


class TestServiceRoutes:
    """`/services/{kind}/__faults` and `__stats` are the service's own, through the lab."""

    async def test_lists_the_services_with_their_urls(
        self, lab: MockClient, services: dict[ServiceKind, MockClient]
    ) -> None:
        listed = await get_json(lab, "/services")
        assert [s["kind"] for s in listed] == list(KINDS)
        for entry in listed:
            assert entry["url"] == str(services[entry["kind"]].make_url("")).rstrip("/")

    async def test_a_fault_set_in_the_lab_is_in_force_on_the_service(
        self, lab: MockClient, services: dict[ServiceKind, MockClient]
    ) -> None:
        async with lab.put("/services/reviews/__faults", json={"error_rate": 1}) as resp:
            assert resp.status == 200
        async with services["reviews"].get("/reviews/P001") as resp:
            assert resp.status == 503
        assert (await get_json(services["product"], "/__faults"))["error_rate"] == 0
        stats = await get_json(lab, "/services/reviews/__stats?recent=5")
        assert [r["status"] for r in stats["recent"]] == [503]

    async def test_a_preset_through_the_lab(
        self, lab: MockClient, services: dict[ServiceKind, MockClient]
    ) -> None:
        async with lab.put("/services/inventory/__faults?preset=inventory-down") as resp:
            assert resp.status == 200
        assert (await get_json(services["inventory"], "/__faults"))["error_rate"] == 1
        presets = await get_json(lab, "/presets")
        assert "brownout" in [p["name"] for p in presets]

    @pytest.mark.parametrize("path", ["/services/payments/__faults", "/nope"])
    async def test_unknown_paths_are_404_problems(self, lab: MockClient, path: str) -> None:
        async with lab.get(path) as resp:
            assert resp.status == 404
            assert resp.content_type == "application/problem+json"
