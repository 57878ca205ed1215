"""The admin listener: operators' endpoints apart from the API.

`/healthz`, `/readyz` and `/metrics` answer on BFF_ADMIN_PORT only: never CORS, never rate
limited, never behind JWT, never shed; `/readyz` follows the worker's lifecycle. On the
public port the same paths are a 404 problem. With several workers, any worker's `/metrics`
counts for all of them (tests/bff/test_metrics.py::TestTwoWorkers, through the admin port).
"""

from __future__ import annotations

import pytest
from bff_support import AdminFor, BffClient, MakeBff
from edge_support import SECRET

from bff.keys import LIFECYCLE
from bff.settings import Settings, SettingsError

OPERATOR_PATHS = ("/healthz", "/readyz", "/metrics")


EVERYTHING_ON = {
    "BFF_CORS_ORIGINS": "https://shop.example",
    "BFF_RATE_LIMIT_RATE": "1",
    "BFF_RATE_LIMIT_BURST": "1",
    "BFF_AUTH_JWT_SECRET": SECRET,
    "BFF_MAX_IN_FLIGHT": "1",
}


class TestPublicPort:
    async def test_operator_paths_are_a_404_problem(self, make_bff: MakeBff) -> None:
        client = await make_bff()
        for path in OPERATOR_PATHS:
            async with client.get(path) as resp:
                assert resp.status == 404, path
                assert resp.content_type == "application/problem+json"
                body = await resp.json(content_type=None)
                assert body["requestId"] == resp.headers["X-Request-ID"]


class TestAdminListener:
    async def test_answers_with_every_edge_protection_on(
        self, make_bff: MakeBff, admin_for: AdminFor
    ) -> None:
        """CORS, a rate of 1/s, JWT and an in-flight cap of 1 change nothing here."""
        admin = await admin_for(await make_bff(**EVERYTHING_ON))
        for _ in range(3):
            for path in OPERATOR_PATHS:
                headers = {"Origin": "https://shop.example"}
                async with admin.get(path, headers=headers) as resp:
                    assert resp.status == 200, path
                    assert not [h for h in resp.headers if h.lower().startswith("access-control")]
                    assert "Vary" not in resp.headers
                    assert "WWW-Authenticate" not in resp.headers

    async def test_no_preflight_is_granted(self, make_bff: MakeBff, admin_for: AdminFor) -> None:
        admin = await admin_for(await make_bff(**EVERYTHING_ON))
        headers = {"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"}
        async with admin.options("/metrics", headers=headers) as resp:
            assert resp.status == 405
            assert "Access-Control-Allow-Origin" not in resp.headers

    async def test_readyz_follows_the_lifecycle(
        self, make_bff: MakeBff, admin_for: AdminFor
    ) -> None:
        bff = await make_bff()
        admin = await admin_for(bff)
        async with admin.get("/readyz") as resp:
            assert resp.status == 200
        assert bff.app is not None
        bff.app[LIFECYCLE].draining = True
        async with admin.get("/readyz") as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "1"
            assert (await resp.json(content_type=None))["type"] == "/problems/not-ready"
        async with admin.get("/healthz") as resp:
            assert resp.status == 200, "alive while draining"

    async def test_unknown_paths_are_problems_too(
        self, make_bff: MakeBff, admin_for: AdminFor
    ) -> None:
        admin = await admin_for(await make_bff())
        async with admin.get("/product-details/P001") as resp:
            assert resp.status == 404
            assert resp.content_type == "application/problem+json"
            assert resp.headers["Cache-Control"] == "no-store"


class TestSettings:
    def test_default_port_and_variable(self) -> None:
        assert Settings.from_env({}).admin_port == 9090
        assert Settings.from_env({"BFF_ADMIN_PORT": "0"}).admin_port == 0

    @pytest.mark.parametrize(
        "env",
        [{"BFF_ADMIN_PORT": "70000"}, {"BFF_ADMIN_PORT": "8080", "BFF_PORT": "8080"}],
        ids=["out-of-range", "same-as-public"],
    )
    def test_invalid(self, env: dict[str, str]) -> None:
        with pytest.raises(SettingsError, match="BFF_ADMIN_PORT"):
            Settings.from_env(env)


class TestHealth:
    async def test_healthz_and_readyz(self, bff: BffClient, admin_for: AdminFor) -> None:
        admin = await admin_for(bff)
        async with admin.get("/healthz") as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "ok"}
        async with admin.get("/readyz") as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "ready"}
