"""The front door: what is refused before any work, cheapest check first.

`EdgeGuard` (guard.py) runs inside the one edge middleware, in this order:

    CORS preflight  → answered here (204, or 403 for an origin/method not allowed)
    /openapi.json   → skips everything below (operators' endpoints are on the admin listener)
    body on GET     → 413 past BFF_MAX_BODY_BYTES
    load shedding   → 503 + Retry-After at once when this worker's in-flight cap is full
    JWT auth        → 401 + WWW-Authenticate (only when a key is configured)
    rate limit      → 429 + Retry-After, RateLimit-* (key: token subject, else client IP)
    handler
    then on every response: CORS headers; `Server: bff`, `nosniff`; `Connection: close`
    while draining.

Each protection costs nothing when it is off (a `None` check). Server limits (request line,
header size and count, keep-alive/header-read timeout) and the graceful drain live in
`server_limits.py` and `drain.py`: they act on the listener, not on requests. Client headers
that travel downstream are checked in `forwarding.py`; JWKS keys are fetched in `jwks.py`.
"""
