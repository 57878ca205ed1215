"""The storefront's server: the static page, and where the BFF is (`/config.json`). No I/O.

The page is the whole product; this server only hands it out. Its Content-Security-Policy
allows scripts, styles and images from this origin only, and fetches from this origin and
the BFF's: a page that works here works offline and cannot leak to a third party.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from yarl import URL

__all__ = ["STATIC_DIR", "create_storefront_app", "origin_of"]

STATIC_DIR = Path(__file__).with_name("static")
BFF_URL = web.AppKey("bff_url", str)


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of an absolute http(s) URL; ValueError otherwise."""
    parsed = URL(url)
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return str(parsed.origin())


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def _config(request: web.Request) -> web.Response:
    return web.json_response({"bffUrl": request.app[BFF_URL]})


def _headers_middleware(csp: str) -> Middleware:
    @web.middleware
    async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"
        return response

    return headers


def create_storefront_app(bff_url: str) -> web.Application:
    """The page for the BFF at `bff_url` (its base URL: scheme, host and port)."""
    origin = origin_of(bff_url)
    csp = (
        f"default-src 'self'; connect-src 'self' {origin}; img-src 'self' data:; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
    app = web.Application(middlewares=[_headers_middleware(csp)])
    app[BFF_URL] = bff_url.rstrip("/")
    app.router.add_get("/", _index)
    app.router.add_get("/config.json", _config)
    app.router.add_static("/static/", STATIC_DIR)
    return app
