"""Limits on what one connection may send, handed to aiohttp's protocol (not per request).

- Request line, header line size and header count: past them aiohttp's parser refuses the
  request and closes the connection, before any middleware runs; the 400 is still a problem
  document with a request id (bff.edge.protocol answers for the parser).
- `keepalive_timeout`: aiohttp arms this timer when a connection opens and after each
  response, and closes the connection if no complete request head has arrived when it fires.
  It is both the idle keep-alive timeout and the bound on a slow client trickling headers.
- A body on GET is checked by the edge guard (413); `client_max_size` covers a handler that
  would read one.

aiohttp logs every malformed request with a traceback at ERROR: a flood of garbage would cost
CPU and fill the disk. Those (HttpProcessingError) are dropped from its log; anything else
it reports still goes through.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from bff.settings import Settings


def _not_a_bad_request(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], HttpProcessingError))


_HTTP_LOG = logging.getLogger("bff.http")
_HTTP_LOG.addFilter(_not_a_bad_request)


def runner_options(settings: Settings) -> dict[str, Any]:
    edge = settings.edge
    return {
        "max_line_size": edge.max_request_line,
        "max_field_size": edge.max_header_size,
        "max_headers": edge.max_headers,
        "keepalive_timeout": edge.keepalive_timeout_s,
        "logger": _HTTP_LOG,
        # In-flight requests get what is left of the grace once the drain delay is over,
        # minus a moment to close sessions (see bff.edge.drain).
        "shutdown_timeout": in_flight_timeout(settings),
    }


def in_flight_timeout(settings: Settings) -> float:
    left = settings.shutdown_grace_s - settings.edge.drain_delay_s
    return max(0.1, left - min(1.0, left / 2))
