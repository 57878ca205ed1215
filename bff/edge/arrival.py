"""When the BFF received a request: the start of its deadline, queueing included.

Under load a worker's loop reaches a request's handler long after its bytes arrived (other
requests' work, a slow callback, a burst of connections); a deadline counted from the handler
would hide that wait, and a frontend promised 500 ms would wait for seconds. aiohttp records
no receive time, so our protocol class stamps `time.perf_counter()` in `data_received` when the
bytes start a new request on an idle connection; the edge takes the stamp once per request.

A pipelined request (its bytes arrived while an earlier request of the same connection was
still being handled or waiting) gets no stamp and is timed from when the edge first saw it:
browsers and HTTP/1.1 clients do not pipeline, and guessing its share of the wait would be
wrong either way. A request split over several reads keeps the stamp of its first bytes.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from bff import _compat
from bff.edge.parse_errors import ProblemRequestHandler


class BffRequestHandler(ProblemRequestHandler):
    """aiohttp's protocol with parser errors as problems, and a receive stamp per request."""

    __slots__ = ("received_at",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.received_at: float | None = None

    def data_received(self, data: bytes) -> None:
        if self.received_at is None and _compat.connection_idle(self):
            self.received_at = time.perf_counter()
        super().data_received(data)


def take_received_at(request: web.BaseRequest) -> float:
    """The perf_counter time the request's first bytes arrived (now, when unknown); taken
    once, so the connection's next request gets a stamp of its own."""
    protocol = request.protocol
    if isinstance(protocol, BffRequestHandler) and protocol.received_at is not None:
        received, protocol.received_at = protocol.received_at, None
        return received
    return time.perf_counter()


class BffServer(Server):
    """aiohttp's `Server` (same slots: the runner swaps its class in), handing out
    `BffRequestHandler`s."""

    __slots__ = ()

    def __call__(self) -> RequestHandler:
        return _compat.new_request_handler(self, BffRequestHandler)
