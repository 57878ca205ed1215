"""Our own answer: ETag and 304, Cache-Control and Vary, br and gzip by Accept-Encoding."""

from __future__ import annotations

import gzip
from typing import Any

import brotli
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
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
        assert choose("gzip;q=0.1, " * 10_000 + "br") in {"gzip", "identity", "br"}
        assert choose.cache_info().maxsize == 512
