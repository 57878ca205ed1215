"""`/healthz` (the process is alive) and `/readyz` (it takes traffic: started, not draining)."""

from __future__ import annotations

from aiohttp import web

from bff import problems
from bff.keys import LIFECYCLE, REQUEST_ID

_OK = b'{"status":"ok"}'
_READY = b'{"status":"ready"}'


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=_OK, content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    lifecycle = request.app[LIFECYCLE]
    if lifecycle.ready:
        return web.Response(body=_READY, content_type="application/json")
    why = "draining" if lifecycle.draining else "starting"
    return problems.not_ready(why, instance=request.path, request_id=request[REQUEST_ID])
