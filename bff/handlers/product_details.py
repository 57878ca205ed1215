"""`GET /product-details/{id}`: validate, aggregate under one deadline, encode."""

from __future__ import annotations

import msgspec
from aiohttp import web

from bff import validation
from bff.aggregate import product_details
from bff.clients.call import CallContext
from bff.deadline import Deadline
from bff.edge import forwarding
from bff.errors import ServiceOverloaded
from bff.keys import CALL_CONTEXT, CLIENTS, RECEIVED_AT, REQUEST_ID, SETTINGS, SUBJECT

_encode = msgspec.json.Encoder().encode


async def get_product_details(request: web.Request) -> web.Response:
    product_id = validation.product_id(request.match_info["id"])
    client_budget = validation.client_budget_s(request.headers.get("X-Request-Timeout-Ms"))
    settings = request.app[SETTINGS]
    budget = settings.deadline_ms / 1000
    if client_budget is not None:
        budget = min(budget, client_budget)

    request_id = request[REQUEST_ID]
    # Of the client's headers only these go downstream, nothing else ever (`tracestate` goes
    # with the trace context, checked by bff.edge.forwarding too). A client's own X-User-ID is
    # never among them: that header carries our verified subject only.
    headers = {"X-Request-ID": request_id}
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        headers["Authorization"] = authorization
    language = forwarding.accept_language(request.headers.get("Accept-Language"))
    if language is not None:
        headers["Accept-Language"] = language
    subject = request.get(SUBJECT)
    if subject is not None:
        headers["X-User-ID"] = subject
    ctx = CallContext(Deadline(budget, received_at=request[RECEIVED_AT]), headers)
    if ctx.deadline.remaining() <= 0:  # spent waiting in our queue: refuse, call nobody
        raise ServiceOverloaded("the request's deadline passed while it was queued")
    request[CALL_CONTEXT] = ctx

    details = await product_details(request.app[CLIENTS], product_id, ctx)
    return web.Response(body=_encode(details), content_type="application/json")
