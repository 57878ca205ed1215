"""The front door: who may come in, and how the worker takes requests.

    guard.py          EdgeGuard: CORS preflight, route and body checks, JWT auth, rate limit,
                      in that order (cheapest and most general first); CORS headers and
                      `Connection: close` while draining on every response
    admission.py      whether this worker keeps up: cache misses refused early and cheaply
                      only when it does not (CoDel on the worker's own queue delay)
    protocol.py       the HTTP protocol: each request's receive time, parser errors as problems
    cors.py, auth.py, jwks.py, ratelimit.py, client_ip.py    the protections themselves
    server_limits.py  request line, header size and count, keep-alive and header-read timeouts
    drain.py          the graceful drain on SIGTERM (SIGINT, SIGHUP)

Each protection costs nothing when it is off (a `None` check). Client headers that travel
downstream are checked in `bff.validation`.
"""
