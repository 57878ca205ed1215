"""Every error becomes an RFC 9457 problem+json response here, and only here.

The status of each error of `bff.errors` is decided here (`_DOWNSTREAM`, `from_error`); the
body never carries a traceback or an internal detail of an unexpected error (those go to the log).
`from_exception` is the one ladder from an exception to its problem, for the public and the
admin listener alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec
from aiohttp import web

from bff.errors import (
    BffError,
    BodyTooLarge,
    CorsRejected,
    DownstreamError,
    EdgeRejection,
    InvalidRequest,
    RateLimited,
    ServiceOverloaded,
    Unauthorized,
)
from bff.models import Problem
from bff.observability.logging import log

CONTENT_TYPE = "application/problem+json"
_encode = msgspec.json.Encoder().encode

# (status, type slug, title) per downstream reason, when the essential part failed.
_DOWNSTREAM: dict[str, tuple[int, str, str]] = {
    "not_found": (404, "not-found", "Product not found"),
    "timeout": (504, "upstream-timeout", "Product service did not answer in time"),
    "circuit_open": (503, "upstream-circuit-open", "Product service is failing; not called"),
    "overloaded": (503, "overloaded", "Too many calls in flight to the product service"),
    "unavailable": (502, "upstream-unavailable", "Product service failed"),
    "bad_response": (502, "upstream-bad-response", "Product service sent an unusable answer"),
}

# (status, type slug, title) per refusal at the edge (bff.edge).
_EDGE: dict[type[EdgeRejection], tuple[int, str, str]] = {
    Unauthorized: (401, "unauthorized", "Missing or invalid bearer token"),
    CorsRejected: (403, "cors-rejected", "Cross-origin request not allowed"),
    BodyTooLarge: (413, "body-too-large", "Request body too large"),
    RateLimited: (429, "rate-limited", "Too many requests"),
    ServiceOverloaded: (503, "overloaded", "Too many requests in flight; try again shortly"),
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    instance: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
    invalid_params: list[dict[str, str]] | None = None,
) -> web.Response:
    body = Problem(
        type=f"/problems/{slug}",
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        request_id=request_id,
        invalid_params=invalid_params,
    )
    response = web.Response(
        status=status, body=_encode(body), content_type=CONTENT_TYPE, headers=headers
    )
    # A problem is about this request only, on either listener and from the parser too: never
    # stored by a browser or a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def from_error(exc: BffError, *, instance: str, request_id: str) -> web.Response:
    if isinstance(exc, InvalidRequest):
        return problem(
            400,
            "invalid-request",
            "Invalid request",
            exc.detail,
            instance=instance,
            request_id=request_id,
            invalid_params=[{"name": exc.field, "reason": exc.detail}],
        )
    if isinstance(exc, EdgeRejection):
        status, slug, title = _EDGE[type(exc)]
        return problem(
            status,
            slug,
            title,
            exc.detail,
            instance=instance,
            request_id=request_id,
            headers=exc.headers,
        )
    if isinstance(exc, DownstreamError):
        status, slug, title = _DOWNSTREAM.get(exc.reason, _DOWNSTREAM["unavailable"])
        headers = None
        if status == 503:
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after or 1)))}
        detail = f"{exc.service}: {exc.reason}"
        return problem(
            status, slug, title, detail, instance=instance, request_id=request_id, headers=headers
        )
    return internal_error(instance=instance, request_id=request_id)


def from_exception(exc: Exception, *, instance: str, request_id: str) -> web.Response:
    """The problem `exc` stands for: aiohttp's own HTTP errors (404, 405 with `Allow`, 413), a
    `BffError` with its contract status, and anything else a 500 with nothing internal in it.
    Call it from the `except` clause: an unexpected error's traceback goes to the log."""
    if isinstance(exc, web.HTTPException):
        return from_http_exception(exc, instance=instance, request_id=request_id)
    if isinstance(exc, BffError):
        return from_error(exc, instance=instance, request_id=request_id)
    log.exception("unhandled_error", request_id=request_id, path=instance)
    return internal_error(instance=instance, request_id=request_id)


def from_http_exception(exc: web.HTTPException, *, instance: str, request_id: str) -> web.Response:
    """aiohttp's own 404/405/413/... (routing, body limits) as problems, keeping `Allow`."""
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    slug = exc.reason.lower().replace(" ", "-")
    detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
    return problem(
        exc.status,
        slug,
        exc.reason,
        detail,
        instance=instance,
        request_id=request_id,
        headers=headers,
    )


def not_ready(why: str, *, instance: str, request_id: str) -> web.Response:
    """`/readyz` while starting or draining: load balancers should send traffic elsewhere."""
    return problem(
        503,
        "not-ready",
        "Not ready",
        f"this instance is {why}",
        instance=instance,
        request_id=request_id,
        headers={"Retry-After": "1"},
    )


def internal_error(*, instance: str, request_id: str) -> web.Response:
    return problem(
        500,
        "internal-error",
        "Internal error",
        "The BFF failed unexpectedly; quote the request id when reporting it.",
        instance=instance,
        request_id=request_id,
    )
