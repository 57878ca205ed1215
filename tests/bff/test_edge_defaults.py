"""Safe defaults at the edge: what a BFF started with no edge settings does and forwards.

Rate limiting is off until asked for; one client is one rate-limit key however its address
is spelled; client headers travel downstream only when bounded and well formed (dropped,
never a 400); JWT subjects are plain; every response names no versions and says `nosniff`;
even requests aiohttp's parser refuses are problems with an id, counted in the metrics; a
browser with OpenTelemetry passes the CORS preflight.
"""

from __future__ import annotations

from typing import Any

import pytest
from bff_support import AdminFor, BffClient, MakeBff, Mocks
from edge_support import SECRET, claims, hs256, raw_request, real_bff
from prometheus_client.parser import text_string_to_metric_families

from bff import validation as forwarding
from bff.settings import Settings, SettingsError

TIGHT = {"BFF_RATE_LIMIT_RATE": "3", "BFF_RATE_LIMIT_BURST": "3"}
PROXY = {"BFF_TRUSTED_PROXIES": "127.0.0.1/32"}


async def statuses(client: BffClient, headers_list: list[dict[str, str]]) -> list[int]:
    out = []
    for headers in headers_list:
        async with client.get("/product-details/P001", headers=headers) as resp:
            await resp.read()
            out.append(resp.status)
    return out


async def product_headers(mocks: Mocks) -> dict[str, str]:
    """What the product mock received in its last request, names lower-cased."""
    recent = (await mocks.stats("product"))["recent"]
    assert recent, "the product mock saw no request"
    return {k.lower(): v for k, v in recent[-1]["headers"].items()}


class TestRateLimitDefault:
    """Off unless BFF_RATE_LIMIT_RATE is set: behind a balancer without trusted proxies every
    user would otherwise share the balancer's one bucket."""

    def test_off_without_a_rate(self) -> None:
        assert not Settings.from_env({}).edge.rate_limit.enabled

    async def test_a_burst_alone_does_not_turn_it_on(self, make_bff: MakeBff) -> None:
        client = await make_bff(BFF_RATE_LIMIT_BURST="1")
        assert await statuses(client, [{}] * 4) == [200] * 4

    async def test_a_rate_turns_it_on_with_twice_the_rate_as_burst(self, make_bff: MakeBff) -> None:
        client = await make_bff(BFF_RATE_LIMIT_RATE="1")
        assert await statuses(client, [{}] * 3) == [200, 200, 429]


class TestSharedState:
    def test_one_redis_url_is_the_rate_limits_storage(self) -> None:
        settings = Settings.from_env({"BFF_REDIS_URL": "redis://cache:6379/1"})
        assert settings.redis_url == "redis://cache:6379/1"
        assert settings.edge.rate_limit.storage == "redis://cache:6379/1"
        assert Settings.from_env({}).edge.rate_limit.storage == "memory://"

    def test_the_old_storage_variable_is_refused_with_its_replacement(self) -> None:
        with pytest.raises(SettingsError, match="BFF_REDIS_URL"):
            Settings.from_env({"BFF_RATE_LIMIT_STORAGE": "redis://cache:6379"})


class TestCanonicalClientKey:
    """One client, one bucket: every spelling of an address (ports, IPv6 forms, IPv4-mapped)
    and every address of one IPv6 /64 share the limit."""

    @pytest.mark.parametrize(
        "spellings",
        [
            ["2001:db8::1", "2001:0DB8:0:0::1", "[2001:db8::1]:443", "2001:db8::ffff"],
            ["198.51.100.7", "198.51.100.7:5555", "::ffff:198.51.100.7", "[::ffff:c633:6407]:1"],
        ],
        ids=["ipv6-one-64", "ipv4-ports-mapped"],
    )
    async def test_spellings_share_one_bucket(
        self, make_bff: MakeBff, spellings: list[str]
    ) -> None:
        client = await make_bff(**TIGHT, **PROXY)
        got = await statuses(client, [{"X-Forwarded-For": s} for s in spellings])
        assert got == [200, 200, 200, 429]

    async def test_another_64_is_another_client(self, make_bff: MakeBff) -> None:
        client = await make_bff(**TIGHT, **PROXY)
        first = [{"X-Forwarded-For": "2001:db8:0:1::1"}] * 4
        assert await statuses(client, first) == [200, 200, 200, 429]
        assert await statuses(client, [{"X-Forwarded-For": "2001:db8:0:2::1"}]) == [200]

    async def test_a_port_on_a_hop_does_not_fall_back_to_the_proxy(self, make_bff: MakeBff) -> None:
        """`ip:port` is the client, not garbage: two such clients don't share the proxy's
        bucket."""
        client = await make_bff(**TIGHT, **PROXY)
        one = [{"X-Forwarded-For": "203.0.113.1:1000"}] * 3
        two = [{"X-Forwarded-For": "203.0.113.2:1000"}] * 3
        assert await statuses(client, one + two) == [200] * 6


class TestForwardedHeaders:
    async def test_a_plain_accept_language_is_forwarded(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        client = await make_bff()
        value = "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5"
        assert await statuses(client, [{"Accept-Language": value}]) == [200]
        assert (await product_headers(mocks))["accept-language"] == value

    @pytest.mark.parametrize(
        "value",
        ["en-" + "a" * 8 + ("," + "en-" + "a" * 8) * 25, "en;q=2", "<script>", "en;;q=1", "en-"],
        ids=["over-256-bytes", "weight-over-1", "markup", "bad-params", "empty-subtag"],
    )
    async def test_a_bad_accept_language_is_dropped_not_refused(
        self, make_bff: MakeBff, mocks: Mocks, value: str
    ) -> None:
        client = await make_bff()
        assert await statuses(client, [{"Accept-Language": value}]) == [200]
        assert "accept-language" not in await product_headers(mocks)

    async def test_tracestate_within_limits_goes_downstream(
        self, make_bff: MakeBff, mocks: Mocks
    ) -> None:
        client = await make_bff()
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,tenant@vendor=x"
        headers = {"traceparent": parent, "tracestate": state}
        assert await statuses(client, [headers]) == [200]
        assert (await product_headers(mocks))["tracestate"] == state

    @pytest.mark.parametrize(
        "state",
        [
            ",".join(f"k{i}=v" for i in range(33)),
            "k=" + "v" * 300 + ",l=" + "v" * 250,
            "UPPER=v",
            "k=v=w",
            "k=v,k=w",
        ],
        ids=["33-members", "over-512-chars", "bad-key", "bad-value", "duplicate-key"],
    )
    async def test_tracestate_past_the_limits_is_dropped(
        self, make_bff: MakeBff, mocks: Mocks, state: str
    ) -> None:
        client = await make_bff()
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        assert await statuses(client, [{"traceparent": parent, "tracestate": state}]) == [200]
        seen = await product_headers(mocks)
        assert seen["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
        assert "tracestate" not in seen

    def test_the_limits_are_the_w3c_ones(self) -> None:
        assert forwarding.tracestate([",".join(f"k{i}=v" for i in range(32))]) is not None
        assert forwarding.tracestate(["a=" + "v" * 250, "b=" + "v" * 250]) is not None  # 507
        assert forwarding.tracestate(["a=" + "v" * 255, "b=" + "v" * 254]) is None  # 514
        assert forwarding.accept_language("x" * 250 + ";q=1") is None  # a range is <= 8 chars
        assert forwarding.accept_language("en-" + "a" * 8 + ", *;q=0") is not None


JWT_ENV = {"BFF_AUTH_JWT_SECRET": SECRET}
CORS_ENV = {"BFF_CORS_ORIGINS": "https://shop.example"}


class TestJwtSubject:
    @pytest.mark.parametrize("subject", ["alice,admin", "alice bob", 'a"b', "é", "a\\b", ""])
    async def test_an_unsafe_subject_is_refused(self, make_bff: MakeBff, subject: str) -> None:
        client = await make_bff(**JWT_ENV)
        token = hs256(claims(sub=subject, iss=None, aud=None))
        assert await statuses(client, [{"Authorization": f"Bearer {token}"}]) == [401]

    @pytest.mark.parametrize(
        "subject", ["auth0|5f7c8ec7c33c6c004bbafe82", "ann@example.com", "248289761001", "a/b+c="]
    )
    async def test_what_identity_providers_use_is_accepted(
        self, make_bff: MakeBff, mocks: Mocks, subject: str
    ) -> None:
        client = await make_bff(**JWT_ENV)
        token = hs256(claims(sub=subject, iss=None, aud=None))
        assert await statuses(client, [{"Authorization": f"Bearer {token}"}]) == [200]
        assert (await product_headers(mocks))["x-user-id"] == subject


def assert_fixed_headers(headers: Any) -> None:
    assert headers["Server"] == "bff"
    assert headers["X-Content-Type-Options"] == "nosniff"


class TestFixedHeaders:
    """`Server: bff` (no versions) and `nosniff` on every answer of both listeners."""

    async def test_public_answers(self, make_bff: MakeBff) -> None:
        client = await make_bff(BFF_CORS_ORIGINS="https://shop.example")
        requests = [
            ("GET", "/product-details/P001", {}),
            ("GET", "/product-details/bad!", {}),
            ("GET", "/nowhere", {}),
            ("POST", "/product-details/P001", {}),
            ("GET", "/openapi.json", {}),
            (
                "OPTIONS",
                "/product-details/P001",
                {"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"},
            ),
            (
                "OPTIONS",
                "/product-details/P001",
                {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
            ),
        ]
        seen = set()
        for method, path, headers in requests:
            async with client.request(method, path, headers=headers) as resp:
                seen.add(resp.status)
                assert_fixed_headers(resp.headers)
        assert seen == {200, 400, 404, 405, 204, 403}

    async def test_admin_answers(self, bff: BffClient, admin_for: AdminFor) -> None:
        admin = await admin_for(bff)
        for path in ("/healthz", "/readyz", "/metrics", "/nowhere"):
            async with admin.get(path) as resp:
                assert_fixed_headers(resp.headers)


def parse_errors(text: str) -> dict[str, float]:
    return {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "bff_http_parse_errors_total"
    }


class TestParserErrors:
    """aiohttp's parser refuses these before any middleware; they still get a problem with a
    request id, our fixed headers, and a count by reason."""

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "line_too_long"),
            (b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", "bad_method"),
            (b"GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", "malformed"),
        ],
        ids=["oversized-line", "bad-method", "nul-in-header"],
    )
    async def test_a_problem_with_an_id(
        self, mocks: Mocks, bff: BffClient, admin_for: AdminFor, data: bytes, reason: str
    ) -> None:
        admin = await admin_for(bff)
        async with admin.get("/metrics") as resp:
            before = parse_errors(await resp.text()).get(reason, 0.0)
        async with real_bff(mocks.env()) as (host, port, _app):
            answer = await raw_request(host, port, data)
        assert answer.status == 400
        assert answer.header("Content-Type") == "application/problem+json"
        assert answer.header("Server") == "bff"
        assert answer.header("X-Content-Type-Options") == "nosniff"
        request_id = answer.header("X-Request-ID")
        assert request_id is not None
        assert len(request_id) == 32
        assert b'"requestId":"' + request_id.encode() + b'"' in answer.body
        assert b"/problems/invalid-request" in answer.body
        async with admin.get("/metrics") as resp:
            after = parse_errors(await resp.text()).get(reason, 0.0)
        assert after - before == 1


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
