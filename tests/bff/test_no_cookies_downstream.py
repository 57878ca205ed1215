"""One client session serves every user's calls: a cookie a service sets must never travel
on anybody's next call (it would hand one user's session to the next)."""

from __future__ import annotations

from aiohttp import web
from bff_support import MakeBff
from pytest_aiohttp import AiohttpServer

from mock_services.catalogue import reviews_for


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

    app = web.Application()
    app.router.add_get("/reviews/{id}", reviews)
    server = await aiohttp_server(app)
    # A name, not an address: aiohttp's default jar ignores cookies from IP addresses.
    # BFF_DNS_REFRESH_S=0: the name is called as such, not as the addresses it resolves to.
    bff = await make_bff(BFF_REVIEWS_URL=f"http://localhost:{server.port}", BFF_DNS_REFRESH_S=0)
    for product_id in ("P001", "P002", "P001"):
        async with bff.get(f"/product-details/{product_id}") as resp:
            assert resp.status == 200
            assert "Set-Cookie" not in resp.headers
    assert cookies_seen == [None, None, None]
