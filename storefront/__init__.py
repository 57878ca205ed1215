"""The storefront: a product page that a frontend team would write against the BFF.

Static HTML and JavaScript (storefront/static/, no build step, nothing from another origin)
served on loopback by `python -m storefront` (default http://127.0.0.1:8088). The page calls
the BFF cross-origin, as a real frontend does, asking for the incremental answer
(`Accept: application/x-ndjson`, docs/contract.md): it paints the product as soon as the first
line arrives, then reviews and stock as their lines land, a degraded part as a shopper should
see it ("Reviews unavailable", "Stock unknown"), a stale copy with its age, and the request's
timings as a small waterfall. A plain JSON answer (a proxy that buffers the stream) renders
too, and a problem shows its title.

    app = create_storefront_app("http://127.0.0.1:8080")
"""

from .app import create_storefront_app

__all__ = ["create_storefront_app"]
