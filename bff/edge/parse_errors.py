"""Requests aiohttp's HTTP parser refuses, answered like every other error: problem+json.

A request line or header past the limits, a bad method, a malformed header: the parser fails
before any application code runs, so the middlewares never see the request. aiohttp answers
those from `RequestHandler.handle_error` with a plain-text 400. That method is the one seam
(aiohttp's own `_make_error_handler` calls it for parser errors, with status 400): our
subclass answers a problem document with a fresh request id, counts it in
`bff_http_parse_errors_total` and writes one access line, without the traceback aiohttp
would log (a flood of garbage must not fill the disk). Other statuses (a 500 from an
exception that escaped every middleware) keep aiohttp's answer, with our fixed headers.

`bff.edge.arrival.BffRequestHandler` (the receive stamp) extends this class, and
`bff.edge.arrival.BffServer` hands it out to the runner (`bff.server.BffRunner`);
tests/bff/test_compat.py and test_edge_defaults.py fail if aiohttp stops routing parser
errors through `handle_error`.
"""

from __future__ import annotations

from aiohttp import http_exceptions as hx
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from bff import problems, validation
from bff.answer.finish import VARY
from bff.edge.headers import stamp
from bff.observability import metrics
from bff.observability.logging import log

# Most specific first. The detail never echoes the client's bytes.
_REASONS: tuple[tuple[type[Exception], str, str], ...] = (
    (hx.LineTooLong, "line_too_long", "the request line or a header is too long"),
    (hx.BadHttpMethod, "bad_method", "the request method is not valid HTTP"),
    (hx.BadStatusLine, "bad_request_line", "the request line is not valid HTTP"),
    (hx.InvalidHeader, "invalid_header", "a header is not valid HTTP"),
    (hx.InvalidURLError, "invalid_url", "the request target is not valid"),
)


def _reason(exc: BaseException | None) -> tuple[str, str]:
    for kind, reason, detail in _REASONS:
        if isinstance(exc, kind):
            return reason, detail
    return "malformed", "the request is not valid HTTP"


class ProblemRequestHandler(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        if status != 400 or request.writer.output_size > 0:
            response = super().handle_error(request, status, exc, message)
            stamp(response.headers)
            return response
        reason, detail = _reason(exc)
        request_id = validation.request_id(None)
        metrics.parse_errors(reason).inc()
        log.info("request", request_id=request_id, status=400, parse_error=reason)
        response = problems.problem(
            400, "invalid-request", "Invalid request", detail, instance="/", request_id=request_id
        )
        response.headers["X-Request-ID"] = request_id
        # What every answer of the public port carries, though no middleware saw this one.
        response.headers["Vary"] = ", ".join(VARY)
        response.headers["Server-Timing"] = "total;dur=0.0"
        stamp(response.headers)
        response.force_close()  # the parser's state is unknown: no keep-alive after this
        return response
