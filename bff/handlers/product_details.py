"""`GET /product-details/{id}`: validate, aggregate the included parts under one deadline,
encode."""

from __future__ import annotations

import msgspec
from aiohttp import web

from bff import validation
from bff.aggregate import aggregate
from bff.answer import ANSWER_FRESHNESS, AnswerFreshness
from bff.context import RequestContext
from bff.deadline import Deadline
from bff.edge import forwarding
from bff.errors import ServiceOverloaded
from bff.fetch_part import PartFetcher
from bff.keys import CLIENTS, CONTEXT, PART_CACHE, PARTS, SETTINGS, SUBJECT
from bff.parts import optional_names

_encode = msgspec.json.Encoder().encode


async def get_product_details(request: web.Request) -> web.Response:
    product_id = validation.product_id(request.match_info["id"])
    client_budget = validation.client_budget_s(request.headers.getall("X-Request-Timeout-Ms", []))
    declared = request.app[PARTS]
    included = validation.include(request.query.getall("include", []), optional_names(declared))
    parts = [part for part in declared if part.required or part.name in included]
    default_budget = request.app[SETTINGS].deadline_s
    budget = default_budget if client_budget is None else min(default_budget, client_budget)

    ctx = request[CONTEXT]
    # Counted from when the request arrived: time queued in this worker is spent already.
    ctx.deadline = Deadline(budget, received_at=ctx.started)
    if ctx.deadline.remaining() <= 0:  # spent waiting in our queue: refuse, call nobody
        raise ServiceOverloaded("the request's deadline passed while it was queued")
    _forward(request, ctx)
    app = request.app
    fetch = PartFetcher(
        app[CLIENTS], app[PART_CACHE], product_id, ctx, refresh_budget_s=default_budget
    )
    body = await aggregate(parts, fetch, ctx)
    request[ANSWER_FRESHNESS] = _freshness(ctx)
    return web.Response(body=_encode(body), content_type="application/json")


def _freshness(ctx: RequestContext) -> AnswerFreshness:
    """What our answer may be cached as: as fresh as its least fresh part, shareable when
    every part was, complete when no part degraded and none was served stale."""
    calls = ctx.calls
    return AnswerFreshness(
        max_age_s=min((call.fresh_for for call in calls), default=0),
        shareable=all(call.shareable for call in calls),
        complete=not ctx.degraded and not ctx.stale,
    )


def _forward(request: web.Request, ctx: RequestContext) -> None:
    """Of the client's headers only these go downstream, nothing else ever (`tracestate` goes
    with the trace context, checked by bff.edge.forwarding too). A client's own X-User-ID is
    never among them: that header carries our verified subject only."""
    headers = ctx.headers
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        headers["Authorization"] = authorization
    language = forwarding.accept_language(request.headers.get("Accept-Language"))
    if language is not None:
        headers["Accept-Language"] = language
    subject = request.get(SUBJECT)
    if subject is not None:
        headers["X-User-ID"] = subject
