"""CORS: allow-list, preflights, exposed headers, no wildcard+credentials, and the trace
context headers a browser with OpenTelemetry sends."""

from __future__ import annotations

import pytest
from bff_support import BffClient, MakeBff, Mocks
from settings_support import tuned

from bff.settings import Settings, SettingsError

SHOP = "https://shop.example"


EVIL = "https://evil.example"


ORIGIN_REFUSED = "this origin may not call the API from a browser"
ENV = {"BFF_CORS_ORIGINS": f"{SHOP}, https://m.shop.example"}


def preflight(origin: str, method: str = "GET", headers: str | None = None) -> dict[str, str]:
    out = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        out["Access-Control-Request-Headers"] = headers
    return out


@pytest.fixture
async def cors_bff(make_bff: MakeBff) -> BffClient:
    return await make_bff(**ENV)


class TestPreflight:
    async def test_allowed_origin(self, cors_bff: BffClient, mocks: Mocks) -> None:
        headers = preflight(SHOP, headers="authorization, x-request-id, x-request-timeout-ms")
        async with cors_bff.options("/product-details/P001", headers=headers) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == SHOP
            assert resp.headers["Access-Control-Allow-Methods"] == "GET, HEAD"
            allowed = resp.headers["Access-Control-Allow-Headers"]
            assert allowed == "authorization, x-request-id, x-request-timeout-ms"
            assert resp.headers["Access-Control-Max-Age"] == "600"
            assert "Origin" in resp.headers["Vary"]
            assert "Access-Control-Allow-Credentials" not in resp.headers
        assert await mocks.requests("product") == 0

    @pytest.mark.parametrize(
        ("headers", "detail"),
        [
            (preflight(EVIL), ORIGIN_REFUSED),
            (preflight("null"), ORIGIN_REFUSED),
            (preflight(f"{SHOP}.evil.example"), ORIGIN_REFUSED),
            (preflight("http://shop.example"), ORIGIN_REFUSED),  # another scheme, another origin
            (preflight(SHOP, method="DELETE"), "method not allowed; allowed: GET, HEAD"),
            (preflight(SHOP, headers="x-internal-debug"), "a requested header is not allowed"),
        ],
        ids=["other-origin", "null-origin", "suffix-trick", "http-scheme", "method", "header"],
    )
    async def test_refused(self, cors_bff: BffClient, headers: dict[str, str], detail: str) -> None:
        async with cors_bff.options("/product-details/P001", headers=headers) as resp:
            assert resp.status == 403
            assert resp.content_type == "application/problem+json"
            assert "Access-Control-Allow-Origin" not in resp.headers
            assert "Access-Control-Allow-Methods" not in resp.headers
            body = await resp.json(content_type=None)
        assert (body["type"], body["detail"]) == ("/problems/cors-rejected", detail)

    async def test_a_preflight_varies_on_what_it_read_and_grants_credentials_when_set(
        self, make_bff: MakeBff
    ) -> None:
        client = await make_bff({"edge.cors.allow_credentials": True}, **ENV)
        async with client.options("/product-details/P001", headers=preflight(SHOP)) as resp:
            assert resp.status == 204
            assert resp.headers["Vary"] == (
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
                "Accept-Encoding, Accept-Language, Authorization"  # what every answer varies on
            )
            assert resp.headers["Access-Control-Allow-Credentials"] == "true"
            assert "Access-Control-Allow-Headers" not in resp.headers  # none asked for

    async def test_no_cors_configured_means_no_preflight(self, bff: BffClient) -> None:
        async with bff.options("/product-details/P001", headers=preflight(SHOP)) as resp:
            assert resp.status == 405
            assert "Access-Control-Allow-Origin" not in resp.headers


class TestResponses:
    async def test_allowed_origin_can_read_timing_and_id(self, cors_bff: BffClient) -> None:
        async with cors_bff.get("/product-details/P001", headers={"Origin": SHOP}) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == SHOP
            exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
            assert {"Server-Timing", "X-Request-ID", "Retry-After"} <= exposed
            assert resp.headers["Timing-Allow-Origin"] == SHOP
            vary = {v.strip() for v in resp.headers["Vary"].split(",")}
            assert vary == {"Origin", "Accept-Encoding", "Accept-Language", "Authorization"}

    async def test_errors_carry_cors_headers_too(self, cors_bff: BffClient) -> None:
        async with cors_bff.get("/product-details/bad id", headers={"Origin": SHOP}) as resp:
            assert resp.status == 400
            assert resp.headers["Access-Control-Allow-Origin"] == SHOP

    async def test_other_origin_gets_no_grant(self, cors_bff: BffClient) -> None:
        async with cors_bff.get("/product-details/P001", headers={"Origin": EVIL}) as resp:
            assert resp.status == 200  # CORS is for browsers; the request itself is fine
            assert "Access-Control-Allow-Origin" not in resp.headers
            vary = {v.strip() for v in resp.headers["Vary"].split(",")}
            assert vary == {"Origin", "Accept-Encoding", "Accept-Language", "Authorization"}

    async def test_credentials(self, make_bff: MakeBff) -> None:
        client = await make_bff({"edge.cors.allow_credentials": True}, **ENV)
        async with client.get("/product-details/P001", headers={"Origin": SHOP}) as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == SHOP
            assert resp.headers["Access-Control-Allow-Credentials"] == "true"

    async def test_wildcard_without_credentials(self, make_bff: MakeBff) -> None:
        client = await make_bff(BFF_CORS_ORIGINS="*")
        async with client.get("/product-details/P001", headers={"Origin": EVIL}) as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            assert "Access-Control-Allow-Credentials" not in resp.headers


class TestSettings:
    def test_wildcard_with_credentials_cannot_be_built(self) -> None:
        wildcard = Settings.from_env({"BFF_CORS_ORIGINS": "*"})
        with pytest.raises(SettingsError, match="'\\*' cannot be combined with credentials"):
            tuned(wildcard, {"edge.cors.allow_credentials": True})

    @pytest.mark.parametrize("value", ["shop.example", "https://shop.example/path", "ftp://x"])
    def test_not_an_origin(self, value: str) -> None:
        with pytest.raises(SettingsError, match="BFF_CORS_ORIGINS"):
            Settings.from_env({"BFF_CORS_ORIGINS": value})

    def test_default_is_empty(self) -> None:
        assert Settings.from_env({}).edge.cors.origins == ()


CORS_ENV = {"BFF_CORS_ORIGINS": "https://shop.example"}


class TestCorsForBrowsersWithTracing:
    async def preflight(self, client: BffClient, requested: str) -> int:
        headers = {
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": requested,
        }
        async with client.options("/product-details/P001", headers=headers) as resp:
            return resp.status

    async def test_traceparent_and_tracestate_are_allowed_by_default(
        self, make_bff: MakeBff
    ) -> None:
        client = await make_bff(**CORS_ENV)
        assert await self.preflight(client, "traceparent, tracestate, x-request-id") == 204

    async def test_the_list_is_the_settings(self, make_bff: MakeBff) -> None:
        fields = {"edge.cors.allow_headers": ("x-request-id", "x-custom")}
        client = await make_bff(fields, **CORS_ENV)
        assert await self.preflight(client, "x-custom") == 204
        assert await self.preflight(client, "traceparent") == 403
