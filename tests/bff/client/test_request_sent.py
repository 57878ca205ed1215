"""The request that goes to a downstream instance: the URL is the instance's base URL (its
path prefix kept byte for byte, %-escapes included) followed by the endpoint's path; our
headers go out unchanged; an address found under a name is called with that name as `Host`;
no redirect is followed, and no cookie a service sets travels on anybody's next call.

Behind a gateway or an ingress the base URL often carries a prefix: a prefix re-quoted or
trimmed sends every call to the wrong place, and a lost header loses the request id and the
caller's time budget. One client session serves every user's calls: a cookie sent back would
hand one user's session to the next."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from bff_support import MakeBff, stand_in
from call_support import get_reviews
from pytest_aiohttp import AiohttpServer
from yarl import URL

from mock_services.catalogue import reviews_for

Seen = dict[str, str]


async def recorder(aiohttp_server: AiohttpServer, seen: Seen) -> URL:
    async def handler(request: web.Request) -> web.Response:
        seen["raw_path"] = request.raw_path
        seen["host"] = request.headers.get("Host", "")
        seen["request_id"] = request.headers.get("X-Request-ID", "")
        return web.Response(body=b"[]", content_type="application/json")

    server = await stand_in(aiohttp_server, handler, "/{tail:.*}")
    return server.make_url("")


async def get(base: URL, host: str | None = None) -> int:
    async with aiohttp.ClientSession() as session:
        reply = await get_reviews(session, base, host=host, headers={"X-Request-ID": "req-1"})
    return reply.status


class TestTheUrl:
    """Base URL path + endpoint path, nothing re-quoted, one slash between them."""

    async def test_a_base_url_without_a_path(self, aiohttp_server: AiohttpServer) -> None:
        seen: Seen = {}
        base = await recorder(aiohttp_server, seen)
        assert await get(base) == 200
        assert seen["raw_path"] == "/reviews/P001"

    async def test_a_prefix_with_escapes_and_a_trailing_slash(
        self, aiohttp_server: AiohttpServer
    ) -> None:
        seen: Seen = {}
        base = await recorder(aiohttp_server, seen)
        prefixed = base.with_path("/gw%20v1X/", encoded=True)
        assert await get(prefixed) == 200
        assert seen["raw_path"] == "/gw%20v1X/reviews/P001"


class TestHeaders:
    """Our headers go out; a discovered address adds its name as Host, and keeps the rest."""

    async def test_our_headers(self, aiohttp_server: AiohttpServer) -> None:
        seen: Seen = {}
        base = await recorder(aiohttp_server, seen)
        await get(base)
        assert seen["request_id"] == "req-1"
        assert seen["host"] == f"{base.host}:{base.port}"

    async def test_a_discovered_address_is_called_by_its_name(
        self, aiohttp_server: AiohttpServer
    ) -> None:
        seen: Seen = {}
        base = await recorder(aiohttp_server, seen)
        await get(base, host="reviews.internal")
        assert seen["host"] == f"reviews.internal:{base.port}"
        assert seen["request_id"] == "req-1"


class TestRedirects:
    """A downstream's 3xx is its answer, never followed: following it would fetch a part from
    wherever the Location points (another host, another id) and call it the service's."""

    async def test_a_redirect_is_not_followed(self, aiohttp_server: AiohttpServer) -> None:
        followed: list[str] = []

        async def moved(request: web.Request) -> web.Response:
            raise web.HTTPFound("/elsewhere")

        async def elsewhere(request: web.Request) -> web.Response:
            followed.append(request.path)
            return web.Response(body=b"[]", content_type="application/json")

        app = web.Application()
        app.router.add_get("/elsewhere", elsewhere)
        app.router.add_get("/reviews/{id}", moved)
        server = await aiohttp_server(app)
        assert await get(server.make_url("")) == 302
        assert followed == []


async def test_a_cookie_set_by_a_service_is_never_sent_back(
    make_bff: MakeBff, aiohttp_server: AiohttpServer
) -> None:
    cookies_seen: list[str | None] = []

    async def reviews(request: web.Request) -> web.Response:
        cookies_seen.append(request.headers.get("Cookie"))
        response = web.json_response(reviews_for(request.match_info["id"]))
        response.set_cookie("session", "user-a-secret", path="/")
        response.headers["Cache-Control"] = "no-store"
        return response

    server = await stand_in(aiohttp_server, reviews, "/reviews/{id}")
    # A name, not an address: aiohttp's default jar ignores cookies from IP addresses.
    # BFF_DNS_REFRESH_S=0: the name is called as such, not as the addresses it resolves to.
    bff = await make_bff(BFF_REVIEWS_URL=f"http://localhost:{server.port}", BFF_DNS_REFRESH_S=0)
    for product_id in ("P001", "P002", "P001"):
        async with bff.get(f"/product-details/{product_id}") as resp:
            assert resp.status == 200
            assert "Set-Cookie" not in resp.headers
    assert cookies_seen == [None, None, None]
