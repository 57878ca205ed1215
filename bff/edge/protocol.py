"""The worker's HTTP protocol: when each request arrived, and what the parser refuses.

When the BFF received a request is the start of its deadline, queueing included. Under load
a worker's loop reaches a request's handler long after its bytes arrived (other requests'
work, a slow callback, a burst of connections); a deadline counted from the handler would
hide that wait, and a frontend promised 500 ms would wait for seconds. aiohttp records no
receive time, so our protocol stamps `time.perf_counter()` in `data_received` when the bytes
start a new request on an idle connection; the middleware takes the stamp once per request
(`take_received_at`). A pipelined request (its bytes arrived while an earlier request of the
same connection was still being handled or waiting) gets no stamp and is timed from when the
middleware first saw it: browsers and HTTP/1.1 clients do not pipeline, and guessing its share
of the wait would be wrong either way. A request split over several reads keeps the stamp of
its first bytes.

Requests aiohttp's HTTP parser refuses (a request line or header past the limits, a bad
method, a malformed header) fail before any application code runs, so the middleware never
sees them. aiohttp answers those from `RequestHandler.handle_error` with a plain-text 400.
That method is the one seam (aiohttp's own `_make_error_handler` calls it for parser errors,
with status 400): ours answers a problem document with a fresh request id, counts it in
`bff_http_parse_errors_total` and writes one access line, without the traceback aiohttp would
log (a flood of garbage must not fill the disk). Other statuses (a 500 from an exception that
escaped every middleware) keep aiohttp's answer, with our fixed headers.

`BffServer` hands our protocol out to the runner (`bff.server.BffRunner`);
tests/bff/test_compat.py fails if aiohttp stops routing parser errors through `handle_error`
or renames what `_compat` reads.
"""

from __future__ import annotations

import time

from aiohttp import http_exceptions as hx
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from aiohttp.web_server import Server

from bff import _compat, problems, validation
from bff.answer import VARY, stamp
from bff.observability import metrics
from bff.observability.logging import log

_IN_PROGRESS, _WAITING = _compat.IDLE_ATTRIBUTES
# Most specific first. The detail never echoes the client's bytes.
_REASONS: tuple[tuple[type[Exception], str, str], ...] = (
    (hx.LineTooLong, "line_too_long", "the request line or a header is too long"),
    (hx.BadHttpMethod, "bad_method", "the request method is not valid HTTP"),
    (hx.BadStatusLine, "bad_request_line", "the request line is not valid HTTP"),
    (hx.InvalidHeader, "invalid_header", "a header is not valid HTTP"),
    (hx.InvalidURLError, "invalid_url", "the request target is not valid"),
)


class BffRequestHandler(RequestHandler):
    """aiohttp's protocol with a receive stamp per request and parser errors as problems."""

    __slots__ = ("received_at",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.received_at: float | None = None

    def data_received(self, data: bytes) -> None:
        if (
            self.received_at is None
            and not getattr(self, _IN_PROGRESS)
            and not getattr(self, _WAITING)
        ):
            self.received_at = time.perf_counter()
        super().data_received(data)

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


def _reason(exc: BaseException | None) -> tuple[str, str]:
    for kind, reason, detail in _REASONS:
        if isinstance(exc, kind):
            return reason, detail
    return "malformed", "the request is not valid HTTP"


def take_received_at(request: web.BaseRequest) -> float:
    """The perf_counter time the request's first bytes arrived (now, when unknown); taken
    once, so the connection's next request gets a stamp of its own."""
    protocol = request.protocol
    if isinstance(protocol, BffRequestHandler):
        received = protocol.received_at
        if received is not None:
            protocol.received_at = None
            return received
    return time.perf_counter()


class BffServer(Server):
    """aiohttp's `Server` (same slots: the runner swaps its class in), handing out
    `BffRequestHandler`s."""

    __slots__ = ()

    def __call__(self) -> RequestHandler:
        return _compat.new_request_handler(self, BffRequestHandler)
