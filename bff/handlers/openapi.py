"""`/openapi.json`: the API description, a file kept in the repo (bff/openapi.json).

The file is the source of truth: tests check the running app against it and fuzz the app
from it (schemathesis). Read once, on the first request, then served from memory.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from aiohttp import web


@cache
def _document() -> bytes:
    return files("bff").joinpath("openapi.json").read_bytes()


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=_document(), content_type="application/json")
