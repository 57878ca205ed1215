"""`/metrics`: Prometheus text format; with several workers, the sum of all of them."""

from __future__ import annotations

from aiohttp import web

from bff.keys import SETTINGS
from bff.observability import metrics


async def get_metrics(request: web.Request) -> web.Response:
    body = await metrics.render(request.app[SETTINGS].metrics_dir)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})
