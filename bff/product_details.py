"""`GET /product-details/{id}`: validate, take what is at hand, admit, fan out under one
deadline, merge; as one JSON body, or line by line as the parts land.

    validate      id, X-Request-Timeout-Ms, include (a 400 sends nothing downstream)
    deadline      the budget counted from when the request arrived (queueing included)
    at hand       each part the cache has fresh (or stale within stale-while-revalidate) in
                  memory: a request whose parts are all at hand is answered now, admitted
                  without a question (it costs what a refusal would)
    admission     the rest is work: bff.edge.admission may refuse it (503) when this worker
                  cannot keep up, unless it only joins calls already running
    fan-out       one task per missing part (bff.cache.fetcher: the cache, then the client);
                  we answer as soon as all have finished, or at the deadline with what has
                  arrived; when the required part (the product) fails we answer at once and
                  cancel the others
    merge         every part's keys in declared order, then `degraded`, `error`, `stale`

Optional parts (reviews, inventory) degrade instead of failing: the answer says so in
`degraded` and `error`, with the part's degraded value in its keys. Each call bounds itself
by the deadline (bff.client); the wait here has a small grace on top as a safety net, so no
bug in a client can hold a response past the deadline. An exception a client should have
mapped but did not (a bug of ours) is logged once, with its traceback, and answered as that
part's `bad_response`: a required part then maps to a 502, and an optional part can never
turn the answer into a 5xx.

Incremental answers (`Accept: application/x-ndjson`; docs/contract.md): the same work, written
as it lands. The first line as soon as the product is known, with every optional part
already at hand and the names of those still `pending`; one line per pending part when it
lands (its keys, or its degraded value and `reason`, or its stale copy's `age`); a last line
with `done`, `degraded`, `stale`, `error` and the `timings`. Folding the part keys of every
line gives the plain body. A product failure before the first line is the usual problem.
NDJSON because a browser reads it with `fetch` and a `getReader()` split on newlines, with
any header (EventSource cannot send `Authorization`) and no multipart parser.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Awaitable, Sequence
from typing import Any

import msgspec
from aiohttp import web

from bff import validation
from bff.answer import AnswerFreshness
from bff.cache.fetcher import NOT_AT_HAND, CachedFetcher
from bff.cache.store import Lookup, View
from bff.context import CONTEXT, SUBJECT, RequestContext
from bff.edge.admission import Admission
from bff.errors import BadResponse, DownstreamError, DownstreamTimeout
from bff.middleware import finish_stream
from bff.observability.logging import log
from bff.parts import Part

__all__ = ["NDJSON", "ProductDetails"]

NDJSON = "application/x-ndjson"
_SAFETY_GRACE_S = 0.005
_encode = msgspec.json.Encoder().encode
# C-level getters: a generator would be one more Python frame per part, per answer.
_FRESH_FOR = operator.attrgetter("fresh_for")
_SHAREABLE = operator.attrgetter("shareable")


# A part not at hand: its index in the answer, the part, and its cache lookup (None: no cache).
_Missing = tuple[int, Part[Any], Lookup | None]


class ProductDetails:
    """The handler, bound to the app's parts, fetcher and admission (one per app)."""

    __slots__ = ("_admission", "_deadline_s", "_fetcher", "_optional", "_parts")

    def __init__(
        self,
        parts: Sequence[Part[Any]],
        fetcher: CachedFetcher,
        admission: Admission,
        *,
        deadline_s: float,
    ) -> None:
        self._parts = tuple(parts)
        self._optional = tuple(p.name for p in parts if not p.required)
        self._fetcher = fetcher
        self._admission = admission
        self._deadline_s = deadline_s

    async def get(self, request: web.Request) -> web.StreamResponse:
        ctx = request[CONTEXT]
        headers = request.headers
        product_id = request.match_info["id"]
        if validation.PRODUCT_ID.fullmatch(product_id) is None:
            validation.product_id(product_id)  # raises the 400
        budget = self._deadline_s
        if "X-Request-Timeout-Ms" in headers:
            own = validation.client_budget_s(headers.getall("X-Request-Timeout-Ms"))
            if own is not None and own < budget:
                budget = own
        parts = self._parts
        if request.query_string and "include" in request.query:
            included = validation.include(request.query.getall("include"), self._optional)
            parts = tuple(p for p in parts if p.required or p.name in included)
        ctx.start(budget)
        view = self._forward(request, ctx)
        fetcher = self._fetcher
        values: list[Any] = []
        missing: list[_Missing] = []
        for i, part in enumerate(parts):
            value, lookup = fetcher.at_hand(part, product_id, ctx, view)
            values.append(value)
            if value is NOT_AT_HAND:
                missing.append((i, part, lookup))
        accept = headers.get("Accept", "")
        if request.method == "GET" and NDJSON in accept and _wants_lines(accept):
            return await self._stream(request, ctx, product_id, parts, view, values, missing)
        if missing:
            await self._fetch_missing(ctx, product_id, view, values, missing, request.transport)
        body = _merge(parts, values, ctx)
        ctx.freshness = _freshness(ctx)
        return web.Response(body=_encode(body), content_type="application/json")

    def _forward(self, request: web.Request, ctx: RequestContext) -> View | None:
        """Of the client's headers only these go downstream, nothing else ever
        (`tracestate` goes with the trace context). A client's own X-User-ID is never among
        them: that header carries our verified subject only. Returns the request as the
        cache sees it."""
        headers = request.headers
        forwarded = ctx.headers
        cached: dict[str, str] = {}
        authorization = headers.get("Authorization")
        if authorization is not None:
            forwarded["Authorization"] = cached["authorization"] = authorization
        language = headers.get("Accept-Language")
        if language is not None and validation.accept_language(language) is not None:
            forwarded["Accept-Language"] = cached["accept-language"] = language
        subject = request.get(SUBJECT)
        if subject is not None:
            forwarded["X-User-ID"] = cached["x-user-id"] = subject
        return None if self._fetcher.cache is None else View(cached)

    async def _fetch_missing(
        self,
        ctx: RequestContext,
        product_id: str,
        view: View | None,
        values: list[Any],
        missing: list[_Missing],
        client: asyncio.BaseTransport | None = None,
    ) -> None:
        """Admit the work, fan it out, fill `values` in (a value, or the part's error).
        `client`: the connection the answer goes out on."""
        fetcher = self._fetcher
        admission = self._admission
        started = await self._admit(ctx, missing, client)
        try:
            loop = asyncio.get_running_loop()
            tasks = [
                loop.create_task(fetcher.fetch(part, product_id, ctx, view, lookup), name=part.name)
                for _, part, lookup in missing
            ]
            await _wait(tasks, [part.required for _, part, _ in missing], ctx)
        finally:
            admission.done(started)
        for (i, part, _), task in zip(missing, tasks, strict=True):
            values[i] = _outcome(task, part)

    def _admit(
        self, ctx: RequestContext, missing: list[_Missing], client: asyncio.BaseTransport | None
    ) -> Awaitable[float | None]:
        """Admission for the calls of `missing`: cheap when every one of them only joins a
        call already running."""
        in_flight = self._fetcher.in_flight
        cheap = all(lookup is not None and in_flight(lookup.key) for *_, lookup in missing)
        return self._admission.enter(ctx.deadline_at, cheap, client)

    # -- line by line -------------------------------------------------------------------------

    async def _stream(
        self,
        request: web.Request,
        ctx: RequestContext,
        product_id: str,
        parts: Sequence[Part[Any]],
        view: View | None,
        values: list[Any],
        missing: list[_Missing],
    ) -> web.StreamResponse:
        fetcher = self._fetcher
        admission = self._admission
        tasks: dict[asyncio.Task[Any], tuple[int, Part[Any]]] = {}
        started: float | None = None
        if missing:
            started = await self._admit(ctx, missing, request.transport)
        try:
            loop = asyncio.get_running_loop()
            for i, part, lookup in missing:
                task = loop.create_task(fetcher.fetch(part, product_id, ctx, view, lookup))
                tasks[task] = (i, part)
            return await self._write_lines(request, ctx, parts, values, tasks)
        finally:
            for task in tasks:
                task.cancel()
            if missing:
                admission.done(started)

    async def _write_lines(
        self,
        request: web.Request,
        ctx: RequestContext,
        parts: Sequence[Part[Any]],
        values: list[Any],
        tasks: dict[asyncio.Task[Any], tuple[int, Part[Any]]],
    ) -> web.StreamResponse:
        pending = set(tasks)
        deadline = ctx.deadline_at + _SAFETY_GRACE_S
        # Until the required parts are known: a failure now is the usual problem document.
        required = {t for t, (_, part) in tasks.items() if part.required}
        while required & pending:
            done, pending = await asyncio.wait(
                pending,
                timeout=max(0.0, deadline - asyncio.get_running_loop().time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                raise DownstreamTimeout(parts[0].name, "deadline reached")
            for task in done:
                i, part = tasks[task]
                values[i] = _outcome(task, part)
                if part.required and isinstance(values[i], DownstreamError):
                    raise values[i]
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        finish_stream(request, response)
        await response.prepare(request)
        first: dict[str, Any] = {}
        failed: list[bytes] = []
        for part, value in zip(parts, values, strict=True):
            if isinstance(value, DownstreamError):
                # An optional part that failed already: a line of its own, right after.
                failed.append(_encode(_part_line(part, value, ctx)))
            elif value is not NOT_AT_HAND:
                first.update(part.merge(value))
        # Every part that gets a line of its own, in the order the parts are declared.
        first["pending"] = [
            part.name
            for part, value in zip(parts, values, strict=True)
            if value is NOT_AT_HAND or isinstance(value, DownstreamError)
        ]
        lines = [_encode(first), *failed]
        await response.write(b"\n".join(lines) + b"\n")
        while pending:
            done, pending = await asyncio.wait(
                pending,
                timeout=max(0.0, deadline - asyncio.get_running_loop().time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                break
            chunk = []
            for task in done:
                i, part = tasks[task]
                values[i] = _outcome(task, part)
                chunk.append(_encode(_part_line(part, values[i], ctx)))
            await response.write(b"\n".join(chunk) + b"\n")
        tail = []
        for task in pending:  # the deadline: what has not landed is a timeout
            task.cancel()
            i, part = tasks[task]
            values[i] = DownstreamTimeout(part.name, "deadline reached")
            tail.append(_encode(_part_line(part, values[i], ctx)))
        body = _merge(parts, values, ctx)
        last: dict[str, Any] = {"done": True, "degraded": body["degraded"], "stale": body["stale"]}
        if "error" in body:
            last["error"] = body["error"]
        last["timings"] = ctx.report().timings_ms()
        tail.append(_encode(last))
        await response.write(b"\n".join(tail) + b"\n")
        await response.write_eof()
        return response


def _wants_lines(accept: str) -> bool:
    """`Accept` prefers NDJSON: listed with a weight above 0, and above `application/json`'s
    when that is listed too (`*/*` alone is plain JSON)."""
    weights: dict[str, float] = {}
    for element in accept.split(","):
        media, _, params = element.partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, raw = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(raw.strip())
                except ValueError:
                    q = 0.0
        weights.setdefault(media.strip().lower(), q)
    lines = weights.get(NDJSON, 0.0)
    return lines > 0 and lines >= weights.get("application/json", 0.0)


def _part_line(part: Part[Any], value: Any, ctx: RequestContext) -> dict[str, Any]:
    line: dict[str, Any] = {"part": part.name}
    if isinstance(value, DownstreamError):
        line.update(part.merge(None))
        line["reason"] = value.reason
    else:
        line.update(part.merge(value))
        if part.name in ctx.stale:
            line["age"] = ctx.stale[part.name]
    return line


async def _wait(tasks: list[asyncio.Task[Any]], required: list[bool], ctx: RequestContext) -> None:
    """Until every task is done, a required one failed, or the deadline (plus grace) passed;
    then cancel what is left."""
    # One waiter for the whole fan-out, woken by the tasks' own done callbacks, and one timer
    # (the safety net). `asyncio.wait(FIRST_COMPLETED)` in a loop did the same with a new
    # waiter, timer and three callback registrations per completion (~20 us per request).
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    left = len(tasks)
    essential = {task for task, needed in zip(tasks, required, strict=True) if needed}

    def on_done(task: asyncio.Task[Any]) -> None:
        nonlocal left
        left -= 1
        # Retrieving the exception also keeps a part whose result we never read (a required
        # part failed first) from logging "Task exception was never retrieved".
        failed = task.cancelled() or task.exception() is not None
        if not finished.done() and (left == 0 or (task in essential and failed)):
            finished.set_result(None)

    for task in tasks:
        task.add_done_callback(on_done)
    timer = loop.call_at(ctx.deadline_at + _SAFETY_GRACE_S, _wake, finished)
    try:
        await finished
    finally:
        timer.cancel()
        for task in tasks:
            if not task.done():
                task.cancel()


def _wake(finished: asyncio.Future[None]) -> None:
    """The safety net: the deadline passed and a call did not stop by itself."""
    if not finished.done():
        finished.set_result(None)


def _outcome(task: asyncio.Task[Any], part: Part[Any]) -> Any:
    """The part's value, or the `DownstreamError` it ends with (a timeout for a task the
    deadline cut; `BadResponse` for anything unexpected, logged)."""
    if not task.done() or task.cancelled():
        return DownstreamTimeout(part.name, "deadline reached")
    exc = task.exception()
    if exc is None:
        return task.result()
    if isinstance(exc, DownstreamError):
        return exc
    log.error(
        "part_failed_unexpectedly",
        part=part.name,
        error=type(exc).__name__,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return BadResponse(part.name, f"unexpected {type(exc).__name__}")


def _merge(parts: Sequence[Part[Any]], values: list[Any], ctx: RequestContext) -> dict[str, Any]:
    """The answer's body: every part's keys, then `degraded`, `error` (when degraded) and
    `stale`. Raises the required part's `DownstreamError`."""
    body: dict[str, Any] = {}
    degraded = ctx.degraded
    for part, value in zip(parts, values, strict=True):
        if isinstance(value, DownstreamError):
            if part.required:
                raise value
            degraded[part.name] = value.reason
            body.update(part.merge(None))
        else:
            body.update(part.merge(value))
    body["degraded"] = degraded
    if degraded:
        body["error"] = "; ".join(f"{part}: {reason}" for part, reason in degraded.items())
    body["stale"] = ctx.stale
    return body


def _freshness(ctx: RequestContext) -> AnswerFreshness:
    """What our answer may be cached as: as fresh as its least fresh part, shareable when
    every part was, complete when no part degraded and none was served stale."""
    calls = ctx.calls
    return AnswerFreshness(
        min(map(_FRESH_FOR, calls), default=0),
        all(map(_SHAREABLE, calls)),
        not ctx.degraded and not ctx.stale,
    )
