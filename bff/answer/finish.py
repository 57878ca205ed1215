"""Finishing our answer: Cache-Control, Vary, ETag, 304, and content coding, on every route.

    response = finish_answer(request, response, min_bytes=1024)

runs once per response, after the handler (and after errors became problems). What the
answer may be cached as comes from the handler through `request[ANSWER_FRESHNESS]`:

    status >= 400                      Cache-Control: no-store           (every problem)
    AnswerFreshness, not complete      Cache-Control: no-store           (degraded or stale)
    AnswerFreshness, complete          private, max-age=<max_age_s>; public instead when
                                       every part was shareable and no Authorization came
    no AnswerFreshness                 the handler's own Cache-Control, if any

`Vary: Accept-Encoding, Accept-Language, Authorization` goes on every answer (merged with
what is there, e.g. CORS's `Origin`). A 200 to a GET or HEAD that may be stored gets a strong
ETag of the bytes sent; an `If-None-Match` that matches it is answered 304 with the same
headers and no body, before any compression work. Bodies of `min_bytes` or more are
compressed with the coding `Accept-Encoding` prefers.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from bff.answer.conditional import etag_of, none_match
from bff.answer.encoding import choose, compress

__all__ = ["ANSWER_FRESHNESS", "VARY", "AnswerFreshness", "answer_middleware", "finish_answer"]

VARY = ("Accept-Encoding", "Accept-Language", "Authorization")
NO_STORE = "no-store"
_VALIDATED_METHODS = frozenset({"GET", "HEAD"})  # a CORS preflight's 200 is not a representation
# Headers that describe the body: a 304 carries none of them (RFC 9110 §15.4.5).
_BODY_HEADERS = (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH, hdrs.CONTENT_ENCODING)


@dataclass(frozen=True, slots=True)
class AnswerFreshness:
    """What the parts of an answer allow: set by the handler, read by `finish_answer`.

    `max_age_s`: the least remaining freshness of the parts, whole seconds (>= 0);
    `shareable`: every part was stored as shared (no `private`, no per-identity copy);
    `complete`: no part degraded and none served stale."""

    max_age_s: int
    shareable: bool
    complete: bool

    def cache_control(self, authorized: bool) -> str:
        if not self.complete:
            return NO_STORE
        scope = "public" if self.shareable and not authorized else "private"
        return f"{scope}, max-age={max(0, self.max_age_s)}"


ANSWER_FRESHNESS = web.RequestKey("answer_freshness", AnswerFreshness)


def finish_answer(
    request: web.Request, response: web.StreamResponse, *, min_bytes: int
) -> web.StreamResponse:
    """The response with its caching headers set, as a 304 if the client holds it, and
    compressed when worth it. Streamed responses only get their headers."""
    headers = response.headers
    freshness = request.get(ANSWER_FRESHNESS)
    if response.status >= 400:
        headers[hdrs.CACHE_CONTROL] = NO_STORE
    elif freshness is not None:
        headers[hdrs.CACHE_CONTROL] = freshness.cache_control(hdrs.AUTHORIZATION in request.headers)
    _add_vary(response)
    if not isinstance(response, web.Response) or response.body is None:
        return response
    body = response.body
    if not isinstance(body, bytes) or hdrs.CONTENT_ENCODING in headers:
        return response
    coding = choose(request.headers.get(hdrs.ACCEPT_ENCODING)) if len(body) >= min_bytes else ""
    if (
        request.method in _VALIDATED_METHODS
        and response.status == 200
        and headers.get(hdrs.CACHE_CONTROL) != NO_STORE
    ):
        headers["ETag"] = etag = etag_of(body, coding or "identity")
        if none_match(request.headers.get(hdrs.IF_NONE_MATCH), etag):
            return _not_modified(response)
    if coding and coding != "identity":
        response.body = compress(body, coding)
        headers[hdrs.CONTENT_ENCODING] = coding
    return response


def answer_middleware(min_bytes: int) -> Middleware:
    """`finish_answer` as a middleware, for an app whose handlers return their responses."""

    @web.middleware
    async def finish(request: web.Request, handler: Handler) -> web.StreamResponse:
        return finish_answer(request, await handler(request), min_bytes=min_bytes)

    return finish


def _add_vary(response: web.StreamResponse) -> None:
    present = response.headers.get(hdrs.VARY)
    if not present:
        response.headers[hdrs.VARY] = ", ".join(VARY)
        return
    have = {name.strip().lower() for name in present.split(",")}
    missing = [name for name in VARY if name.lower() not in have]
    if missing:
        response.headers[hdrs.VARY] = ", ".join([present, *missing])


def _not_modified(response: web.Response) -> web.Response:
    headers = response.headers.copy()
    for name in _BODY_HEADERS:
        headers.popall(name, None)
    return web.Response(status=304, headers=headers)
