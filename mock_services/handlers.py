"""The catalogue endpoints (`/products/{id}`, `/reviews/{id}`, `/inventory/{id}`) with faults.

A request goes: id check (400, no draw) -> fault draw -> simulated delay, cut short by the
caller's `X-Request-Timeout-Ms` budget (504) -> outcome (reset, error, malformed, wrong
schema, or the catalogue body; 404 for missing ids).

A catalogue 200 carries the caching headers in force (`cache_control`, the service's default unless
a fault says otherwise) and, with `etag` on, a strong ETag of its body; an `If-None-Match`
that matches it is answered 304 with no body, after the same delay and fault draw (a real
service does the work before it can compare).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from . import catalogue
from .faults import FaultSettings, Outcome, draw
from .state import PLAN, SERVICE_STATE, ServiceKind

__all__ = [
    "BUDGET_HEADER",
    "etag_of",
    "handler_for",
    "json_response",
    "none_match",
    "parse_budget_ms",
]

BUDGET_HEADER = "X-Request-Timeout-Ms"
# Truncated JSON sent as application/json: a client must fail to decode it.
MALFORMED_BODY = b'{"id": "P001", "name": "Awesome Gad'
# Valid JSON that matches none of the three shapes (an object for reviews, too).
WRONG_SCHEMA_BODY: dict[str, Any] = {"unexpected": True}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_Lookup = Callable[[str], Any]

_LOOKUPS: dict[ServiceKind, _Lookup] = {
    "product": catalogue.product_for,
    "reviews": catalogue.reviews_for,
    "inventory": catalogue.inventory_for,
}


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json"
    )


def parse_budget_ms(value: str | None) -> int | None:
    """The budget in ms from `X-Request-Timeout-Ms`; None when absent or not a positive int."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 9:
        return None
    budget = int(value)
    return budget if budget > 0 else None


def etag_of(body: bytes) -> str:
    """A strong ETag of `body`: the same bytes always give the same tag, in every process."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def none_match(if_none_match: str | None, etag: str) -> bool:
    """True when `If-None-Match` names `etag` or is `*` (weak comparison, RFC 9110 §13.1.2)."""
    if if_none_match is None:
        return False
    opaque = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == opaque:
            return True
    return False


def cacheable_response(request: web.Request, faults: FaultSettings, body: Any) -> web.Response:
    """A 200 with the caching headers in force, or a 304 when the client holds this body."""
    payload = msgspec.json.encode(body)
    headers: dict[str, str] = {}
    if faults.cache_control:
        headers["Cache-Control"] = faults.cache_control
    if faults.etag:
        headers["ETag"] = etag = etag_of(payload)
        if none_match(request.headers.get("If-None-Match"), etag):
            return web.Response(status=304, headers=headers)
    return web.Response(body=payload, headers=headers, content_type="application/json")


def handler_for(kind: ServiceKind) -> Handler:
    """The GET handler of one service."""
    lookup = _LOOKUPS[kind]

    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[SERVICE_STATE]
        product_id = request.match_info["id"]
        if not catalogue.is_valid_id(product_id):
            return json_response({"error": "invalid_id", "id": product_id}, status=400)

        faults = state.faults  # this request keeps the faults in force at its arrival
        plan = draw(faults, state.rng)
        request[PLAN] = plan
        budget_ms = parse_budget_ms(request.headers.get(BUDGET_HEADER))
        if budget_ms is not None and plan.delay_ms > budget_ms:
            await asyncio.sleep(budget_ms / 1000)
            state.stats.budget_exceeded += 1
            return json_response({"error": "budget_exceeded", "budget_ms": budget_ms}, 504)
        if plan.delay_ms > 0:
            await asyncio.sleep(plan.delay_ms / 1000)

        if plan.outcome is Outcome.RESET:
            return _reset(request)
        if plan.outcome is Outcome.ERROR:
            status = faults.error_status
            return json_response({"error": "injected_fault", "status": status}, status)
        if plan.outcome is Outcome.MALFORMED:
            return web.Response(body=MALFORMED_BODY, content_type="application/json")
        if plan.outcome is Outcome.WRONG_SCHEMA:
            return json_response(WRONG_SCHEMA_BODY)

        body = lookup(product_id)
        if body is None:
            return json_response({"error": "not_found", "id": product_id}, status=404)
        return cacheable_response(request, faults, body)

    return handle


def _reset(request: web.Request) -> web.StreamResponse:
    """Drop the connection before a byte of the response is written.

    `abort()` discards the transport at once, so the client sees a disconnect
    (ServerDisconnectedError / ClientOSError), never a status line. The Response returned is
    only for aiohttp's bookkeeping: writing it to an aborted transport is a no-op.
    """
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=200)
