"""The URL map of the public port. The id segment matches anything (even `/` and CR/LF) on
purpose: a bad id gets a 400 from validation, not a 404 from the router. Operators' paths
(/healthz, /readyz, /metrics) are not here: they are on the admin listener (bff.admin), and
here a 404 problem like any unknown path."""

from __future__ import annotations

from aiohttp import web

from bff.handlers.openapi import openapi
from bff.handlers.product_details import get_product_details


def setup_routes(app: web.Application) -> None:
    app.router.add_get(
        r"/product-details/{id:[\s\S]*}", get_product_details, name="product-details"
    )
    app.router.add_get("/openapi.json", openapi, name="openapi")
