"""The reference point: a product-details BFF written the obvious way, deliberately plain.

One process, the default asyncio loop, one `aiohttp.ClientSession` with no connection limit
(`TCPConnector(limit=0)`: the pool of 100 a default session has would cap it near 400 pages a
second at seed latencies, a limit of the reference rather than of the box), the three calls
under `asyncio.gather`, stdlib `json`, and a plain 500 ms overall timeout
(`asyncio.wait_for`) that answers 504. No retries, breakers, bulkheads,
degradation, budgets or logging. It is what our figures are divided by: do not improve it.

    python -m bench.baseline [--host H] [--port N]    (BFF_*_URL name the three services)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
URLS = web.AppKey("urls", dict[str, str])
DEADLINE_S = 0.5


async def product_details(request: web.Request) -> web.Response:
    product_id = request.match_info["id"]
    session = request.app[SESSION]

    async def get(service: str, path: str) -> Any:
        async with session.get(f"{request.app[URLS][service]}/{path}/{product_id}") as resp:
            if resp.status == 404:
                raise web.HTTPNotFound()
            resp.raise_for_status()
            return await resp.json()

    try:
        product, reviews, inventory = await asyncio.wait_for(
            asyncio.gather(
                get("product", "products"), get("reviews", "reviews"), get("inventory", "inventory")
            ),
            DEADLINE_S,
        )
    except TimeoutError:
        return web.json_response({"error": "timeout"}, status=504)
    except aiohttp.ClientError as exc:
        return web.json_response({"error": str(exc)}, status=502)
    ratings = [r["rating"] for r in reviews]
    body = {
        "product": product,
        "reviews": reviews,
        "reviewSummary": {
            "count": len(ratings),
            "averageRating": sum(ratings) / len(ratings) if ratings else None,
        },
        "inventory": inventory,
        "degraded": {},
    }
    return web.Response(text=json.dumps(body), content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


async def _session(app: web.Application) -> AsyncIterator[None]:
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app[SESSION].close()


async def _echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """The harness times each answer by the X-Request-ID it sent (bench/load.lua)."""
    request_id = request.headers.get("X-Request-ID")
    if request_id is not None:
        response.headers["X-Request-ID"] = request_id


def create_app(urls: dict[str, str]) -> web.Application:
    app = web.Application()
    app.on_response_prepare.append(_echo_request_id)
    app[URLS] = urls
    app.router.add_get("/product-details/{id}", product_details)
    app.router.add_get("/readyz", readyz)
    app.cleanup_ctx.append(_session)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    urls = {
        s: os.environ.get(f"BFF_{s.upper()}_URL", f"http://127.0.0.1:{p}").rstrip("/")
        for s, p in (("product", 8081), ("reviews", 8082), ("inventory", 8083))
    }

    # Bind the socket ourselves so port 0 works and the real port can be announced.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]

    async def announce(app: web.Application) -> None:
        print(f"baseline listening on http://{args.host}:{port}", flush=True)

    app = create_app(urls)
    app.on_startup.append(announce)
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()
