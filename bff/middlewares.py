"""The one edge middleware: request id, edge guard, errors as problem+json, Server-Timing, log.

It is the only place that turns exceptions into responses: a `BffError` gets its contract
status, aiohttp's own HTTP errors (404, 405 with `Allow`, 413) become problems too, and any
other exception is logged with its traceback and answered 500 with nothing internal in it.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from bff import problems, validation
from bff.edge.arrival import take_received_at
from bff.errors import BffError
from bff.keys import CALL_CONTEXT, EDGE, RECEIVED_AT, REQUEST_ID
from bff.observability.logging import access_log, log
from bff.timing import server_timing


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Time queued in this worker before we got here counts, in Server-Timing and the deadline.
    started = take_received_at(request)
    request[RECEIVED_AT] = started
    request_id = validation.request_id(request.headers.get("X-Request-ID"))
    request[REQUEST_ID] = request_id
    guard = request.app[EDGE]
    try:
        response = await guard(request, handler)
    except web.HTTPException as exc:
        response = problems.from_http_exception(exc, instance=request.path, request_id=request_id)
    except BffError as exc:
        response = problems.from_error(exc, instance=request.path, request_id=request_id)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled_error", request_id=request_id, path=request.path)
        response = problems.internal_error(instance=request.path, request_id=request_id)

    total = time.perf_counter() - started
    ctx = request.get(CALL_CONTEXT)
    response.headers["X-Request-ID"] = request_id
    response.headers["Server-Timing"] = server_timing(ctx, total)
    guard.decorate(request, response)
    access_log(request, request_id, response.status, total, ctx)
    return response
