"""The one edge middleware: edge guard, errors as problem+json, Server-Timing, access log.

Every exception the guard or a handler raises becomes its problem here (`problems.from_exception`:
a `BffError` gets its contract status, aiohttp's own HTTP errors become problems too, and
any other exception is logged with its traceback and answered 500 with nothing internal).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from bff import problems
from bff.answer import finish_answer
from bff.keys import CONTEXT, EDGE, SETTINGS
from bff.observability.logging import access_log


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request[CONTEXT]  # made by the outermost middleware
    request_id = ctx.id
    guard = request.app[EDGE]
    try:
        response = await guard(request, handler)
    except Exception as exc:  # a cancellation (BaseException) goes on up
        response = problems.from_exception(exc, instance=request.path, request_id=request_id)

    # Caching headers, our ETag (a 304 when the client holds it) and the content coding.
    min_bytes = request.app[SETTINGS].cache.compress_min_bytes
    response = finish_answer(request, response, min_bytes=min_bytes)
    report = ctx.report()  # the one report: Server-Timing, this access line, the metrics
    response.headers["X-Request-ID"] = request_id
    response.headers["Server-Timing"] = report.server_timing()
    guard.decorate(request, response)
    access_log(request, request_id, response.status, report)
    return response
