"""`GET /product-details/{id}`: validate, aggregate under one deadline, encode."""

from __future__ import annotations

import msgspec
from aiohttp import web

from bff import validation
from bff.aggregate import product_details
from bff.clients.call import CallContext
from bff.deadline import Deadline
from bff.keys import CALL_CONTEXT, CLIENTS, REQUEST_ID, SETTINGS, SUBJECT

_encode = msgspec.json.Encoder().encode
# Of the client's headers only these go downstream (contract §2); nothing else, ever. A
# client's own X-User-ID is never among them: that header carries our verified subject only.
_FORWARDED = ("Authorization", "Accept-Language")


async def get_product_details(request: web.Request) -> web.Response:
    product_id = validation.product_id(request.match_info["id"])
    client_budget = validation.client_budget_s(request.headers.get("X-Request-Timeout-Ms"))
    settings = request.app[SETTINGS]
    budget = settings.deadline_ms / 1000
    if client_budget is not None:
        budget = min(budget, client_budget)

    request_id = request[REQUEST_ID]
    headers = {"X-Request-ID": request_id}
    for name in _FORWARDED:
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    subject = request.get(SUBJECT)
    if subject is not None:
        headers["X-User-ID"] = subject
    ctx = CallContext(Deadline(budget), headers)
    request[CALL_CONTEXT] = ctx

    details = await product_details(request.app[CLIENTS], product_id, ctx)
    return web.Response(body=_encode(details), content_type="application/json")
