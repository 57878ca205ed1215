"""The request that goes to a downstream instance: the URL is the instance's base URL (its
path prefix kept byte for byte, %-escapes included) followed by the endpoint's path; our
headers go out unchanged; an address found under a name is called with that name as `Host`.

Behind a gateway or an ingress the base URL often carries a prefix: a prefix re-quoted or
trimmed sends every call to the wrong place, and a lost header loses the request id and the
caller's time budget.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from call_support import get_reviews
from pytest_aiohttp import AiohttpServer
from yarl import URL

Seen = dict[str, str]


async def recorder(aiohttp_server: AiohttpServer, seen: Seen) -> URL:
    async def handler(request: web.Request) -> web.Response:
        seen["raw_path"] = request.raw_path
        seen["host"] = request.headers.get("Host", "")
        seen["request_id"] = request.headers.get("X-Request-ID", "")
        return web.Response(body=b"[]", content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = await aiohttp_server(app)
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
