"""Our own answer: ETag and 304, Cache-Control and Vary, br and gzip by Accept-Encoding, and
the fixed headers (`Server: bff`, `nosniff`) on every answer of both listeners."""

from __future__ import annotations

import gzip
from typing import Any

import brotli
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from bff_support import (
    AdminFor,
    BffClient,
    MakeBff,
    Mocks,
    get_answer,
)
from pytest_aiohttp import AiohttpClient

from bff.answer import AnswerFreshness, choose, etag_of, finish, none_match

MIN_BYTES = 1024


BIG = msgspec.json.encode({"items": [{"id": f"P{i:03d}", "name": "gadget"} for i in range(100)]})


SMALL = b'{"id": "P001"}'


Client = TestClient[web.Request, web.Application]


# What a handler says of its answer (bff.product_details puts it on the request's context).
FRESHNESS = web.RequestKey("freshness", AnswerFreshness)


def finishing(min_bytes: int) -> Any:
    """`bff.answer.finish` after every handler, as the public port's middleware runs it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        return finish(request, await handler(request), min_bytes, request.get(FRESHNESS))

    return middleware


def handler(
    body: bytes, freshness: AnswerFreshness | None = None, status: int = 200, **headers: str
) -> Any:
    async def handle(request: web.Request) -> web.Response:
        if freshness is not None:
            request[FRESHNESS] = freshness
        return web.Response(
            body=body,
            status=status,
            content_type="application/json",
            headers={k.replace("_", "-"): v for k, v in headers.items()},
        )

    return handle


COMPLETE = AnswerFreshness(max_age_s=25, shareable=False, complete=True)


SHAREABLE = AnswerFreshness(max_age_s=25, shareable=True, complete=True)


DEGRADED = AnswerFreshness(max_age_s=25, shareable=True, complete=False)


@pytest.fixture(autouse=True)
def fresh_memo() -> None:
    """Each test negotiates from scratch: a choice memoised by an earlier test would answer
    without running the rules this one checks (and `make mutate` would not see it run them)."""
    choose.cache_clear()


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    app = web.Application(middlewares=[finishing(MIN_BYTES)])
    app.router.add_get("/complete", handler(BIG, COMPLETE))
    app.router.add_get("/small", handler(SMALL, COMPLETE))
    app.router.add_route("OPTIONS", "/small", handler(b"", None))
    app.router.add_get("/shareable", handler(SMALL, SHAREABLE))
    app.router.add_get("/degraded", handler(BIG, DEGRADED))
    app.router.add_get("/problem", handler(BIG, None, status=502))
    app.router.add_get("/plain", handler(BIG, None, Cache_Control="max-age=300"))
    app.router.add_get("/cors", handler(SMALL, COMPLETE, Vary="Origin"))
    return await aiohttp_client(app, auto_decompress=False)


class TestCacheControl:
    """no-store for degraded, stale and problem answers; private or public max-age else."""

    @pytest.mark.parametrize(
        ("path", "auth", "expected"),
        [
            ("/complete", False, "private, max-age=25"),
            ("/shareable", False, "public, max-age=25"),
            ("/shareable", True, "private, max-age=25"),
            ("/degraded", False, "no-store"),
            ("/problem", False, "no-store"),
            ("/plain", False, "max-age=300"),
        ],
    )
    async def test_cache_control(
        self, client: Client, path: str, auth: bool, expected: str
    ) -> None:
        headers = {"Authorization": "Bearer x"} if auth else {}
        async with client.get(path, headers=headers) as resp:
            assert resp.headers["Cache-Control"] == expected

    async def test_vary_everywhere_and_merged(self, client: Client) -> None:
        async with client.get("/problem") as resp:
            assert resp.headers["Vary"] == "Accept-Encoding, Accept-Language, Authorization"
        async with client.get("/cors") as resp:
            assert resp.headers["Vary"] == "Origin, Accept-Encoding, Accept-Language, Authorization"


class TestConditional:
    """A strong ETag of the bytes sent; a matching If-None-Match is a 304 with no body."""

    async def test_etag_and_304(self, client: Client) -> None:
        async with client.get("/small") as resp:
            etag = resp.headers["ETag"]
            assert etag == etag_of(await resp.read())
            assert not etag.startswith("W/")
        async with client.get("/small", headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
            assert await resp.read() == b""
            assert resp.headers["ETag"] == etag
            assert resp.headers["Cache-Control"] == "private, max-age=25"
            assert "Vary" in resp.headers
            assert "Content-Type" not in resp.headers

    async def test_a_match_on_any_line_of_the_header(self, client: Client) -> None:
        """`If-None-Match` may come as several header lines (RFC 9110 §5.3: one list): the tag
        on the second line counts as if it were on the first."""
        async with client.get("/small") as resp:
            etag = resp.headers["ETag"]
        lines = [("If-None-Match", '"other"'), ("If-None-Match", etag)]
        async with client.get("/small", headers=lines) as resp:
            assert resp.status == 304
        async with client.get(
            "/small", headers=[("If-None-Match", '"a"'), ("If-None-Match", '"b"')]
        ) as resp:
            assert resp.status == 200

    async def test_head_too(self, client: Client) -> None:
        async with client.get("/small") as resp:
            etag = resp.headers["ETag"]
        async with client.head("/small", headers={"If-None-Match": f'"x", W/{etag}'}) as resp:
            assert resp.status == 304

    async def test_no_etag_on_answers_that_must_not_be_stored(self, client: Client) -> None:
        for path in ("/degraded", "/problem"):
            async with client.get(path, headers={"If-None-Match": "*"}) as resp:
                assert "ETag" not in resp.headers
                assert resp.status != 304

    async def test_only_get_and_head_are_validated(self, client: Client) -> None:
        async with client.options("/small", headers={"If-None-Match": "*"}) as resp:
            assert "ETag" not in resp.headers
            assert resp.status != 304

    async def test_each_coding_has_its_own_tag(self, client: Client) -> None:
        tags = set()
        for coding in ("br", "gzip", "identity"):
            async with client.get("/complete", headers={"Accept-Encoding": coding}) as resp:
                tags.add(resp.headers["ETag"])
                etag = resp.headers["ETag"]
            headers = {"Accept-Encoding": coding, "If-None-Match": etag}
            async with client.get("/complete", headers=headers) as resp:
                assert resp.status == 304
        assert len(tags) == 3

    async def test_thousands_of_tags_and_a_huge_value(self, client: Client) -> None:
        async with client.get("/small") as resp:
            etag = resp.headers["ETag"]
        many = ", ".join(f'"{i:x}"' for i in range(1000))
        async with client.get("/small", headers={"If-None-Match": many}) as resp:
            assert resp.status == 200
        async with client.get("/small", headers={"If-None-Match": many + ", " + etag}) as resp:
            assert resp.status == 304
        async with client.get("/small", headers={"If-None-Match": "x" * 7000}) as resp:
            assert resp.status == 200


class TestNoneMatch:
    """Weak comparison: W/ on either side matches; * matches; anything else does not."""

    @pytest.mark.parametrize(
        ("header", "match"),
        [
            ('"abc"', True),
            ('W/"abc"', True),
            ('"x", "abc"', True),
            ('"x","abc" ', True),
            ("*", True),
            ('"x", *', True),
            ('"ab"', False),
            ('"abcd"', False),
            ("abc", False),
            ('"x" *', False),
            ("", False),
            (None, False),
        ],
    )
    def test_none_match(self, header: str | None, match: bool) -> None:
        assert none_match(header, '"abc"') is match


class TestCompression:
    """br and gzip by Accept-Encoding with q-values, for bodies of at least the minimum."""

    @pytest.mark.parametrize(
        ("accept", "coding"),
        [
            ("gzip", "gzip"),
            ("br", "br"),
            ("gzip, deflate, br", "br"),
            ("gzip;q=0, br", "br"),
            ("br;q=0.5, gzip;q=0.8", "gzip"),
            ("br;q=0, gzip;q=0", None),
            ("*", "br"),
            ("br;q=0, *;q=0.1", "gzip"),
            ("identity", None),
            ("deflate", None),
            ("gzip;q=2", None),
            ("gzip;q=1e0", None),
            ("", None),
        ],
    )
    async def test_negotiated(self, client: Client, accept: str, coding: str | None) -> None:
        async with client.get("/complete", headers={"Accept-Encoding": accept}) as resp:
            raw = await resp.read()
            assert resp.headers.get("Content-Encoding") == coding
            assert int(resp.headers["Content-Length"]) == len(raw)
        if coding == "br":
            assert brotli.decompress(raw) == BIG
        elif coding == "gzip":
            assert gzip.decompress(raw) == BIG
        else:
            assert raw == BIG

    async def test_small_bodies_are_sent_as_they_are(self, client: Client) -> None:
        async with client.get("/small", headers={"Accept-Encoding": "br, gzip"}) as resp:
            assert "Content-Encoding" not in resp.headers
            assert await resp.read() == SMALL

    @pytest.mark.parametrize(("size", "coding"), [(MIN_BYTES - 1, None), (MIN_BYTES, "gzip")])
    async def test_the_minimum_itself_is_compressed(
        self, aiohttp_client: AiohttpClient, size: int, coding: str | None
    ) -> None:
        """At least the minimum (BFF_COMPRESS_MIN_BYTES): a body of exactly that many bytes
        is compressed, one byte less is not."""
        body = b" " * size
        app = web.Application(middlewares=[finishing(MIN_BYTES)])
        app.router.add_get("/sized", handler(body, COMPLETE))
        client = await aiohttp_client(app, auto_decompress=False)
        async with client.get("/sized", headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers.get("Content-Encoding") == coding
            raw = await resp.read()
        assert (gzip.decompress(raw) if coding else raw) == body

    async def test_every_route_problems_included(self, client: Client) -> None:
        async with client.get("/problem", headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await resp.read()) == BIG

    async def test_a_real_client_decodes_both(self, aiohttp_client: AiohttpClient) -> None:
        app = web.Application(middlewares=[finishing(MIN_BYTES)])
        app.router.add_get("/complete", handler(BIG, COMPLETE))
        client = await aiohttp_client(app)  # decompresses, as a browser would
        for coding in ("br", "gzip"):
            async with client.get("/complete", headers={"Accept-Encoding": coding}) as resp:
                assert resp.headers["Content-Encoding"] == coding
                assert await resp.read() == BIG

    def test_choice_is_memoized_and_bounded(self) -> None:
        """Only the first 64 elements of a header are read: a `br` after 10,000 others is
        never seen (read, it would win at q=1), so a hostile header costs a bounded parse;
        and a value asked for again is answered from the memo, which holds 512 values."""
        hostile = "gzip;q=0.1, " * 10_000 + "br"
        assert choose(hostile) == "gzip"
        assert choose("gzip;q=0.1, " * 63 + "br") == "br"  # the 64th element still counts
        assert choose("gzip;q=0.1, " * 64 + "br") == "gzip"  # the 65th is never read
        hits = choose.cache_info().hits
        assert choose(hostile) == "gzip"
        assert choose.cache_info().hits == hits + 1
        assert choose.cache_info().maxsize == 512


ID = "P001"


class TestOurAnswer:
    """Our answer's validators and content coding, as a real client sees them."""

    async def test_if_none_match_gets_a_304(self, bff: BffClient) -> None:
        first, _ = await get_answer(bff)
        etag = first.headers["ETag"]
        # Anonymous, every part shareable: public, as fresh as the least fresh part (inventory
        # sends max-age=2; whole seconds left, rounded down).
        assert first.headers["Cache-Control"] in ("public, max-age=2", "public, max-age=1")
        again, body = await get_answer(bff, headers={"If-None-Match": etag})
        assert again.status == 304
        assert body is None
        assert again.headers["ETag"] == etag

    async def test_a_degraded_answer_is_not_stored(self, bff: BffClient, mocks: Mocks) -> None:
        await mocks.faults("inventory", error_rate=1.0, cache_control="")
        resp, body = await get_answer(bff)
        assert body["degraded"] == {"inventory": "unavailable"}
        assert resp.headers["Cache-Control"] == "no-store"
        assert "ETag" not in resp.headers

    @pytest.mark.parametrize("coding", ["gzip", "br"])
    async def test_compressed_and_decoded(self, make_bff: MakeBff, coding: str) -> None:
        bff = await make_bff(BFF_COMPRESS_MIN_BYTES=0)
        resp, body = await get_answer(bff, headers={"Accept-Encoding": coding})
        assert resp.headers["Content-Encoding"] == coding
        assert body["product"]["id"] == ID

    async def test_vary_on_every_answer(self, bff: BffClient) -> None:
        resp, _ = await get_answer(bff)
        vary = {v.strip() for v in resp.headers["Vary"].split(",")}
        assert {"Accept-Encoding", "Accept-Language", "Authorization"} <= vary


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
