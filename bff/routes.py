"""The URL map. The id segment matches anything (even `/` and CR/LF) on purpose: a bad id
gets a 400 from validation, not a 404 from the router."""

from __future__ import annotations

from aiohttp import web

from bff.handlers.health import healthz, readyz
from bff.handlers.metrics import get_metrics
from bff.handlers.openapi import openapi
from bff.handlers.product_details import get_product_details


def setup_routes(app: web.Application) -> None:
    app.router.add_get(
        r"/product-details/{id:[\s\S]*}", get_product_details, name="product-details"
    )
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", get_metrics, name="metrics")
    app.router.add_get("/openapi.json", openapi, name="openapi")
