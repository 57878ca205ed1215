"""One part of one request: through the part cache (when on) to its service's client.

    aggregate ─► PartFetcher(part) ─► bff.cache.flow.serve ─► DownstreamClient.call ─► resilience

The client is asked for the raw answer (`Fetched`: 200 or 304, headers, body) with
`If-None-Match` when the cache holds a tag; the cache decides what is stored, served fresh,
coalesced, revalidated or served stale, and decodes through the part's own decoder. Where the
value came from is recorded in the part's `PartCall` (Server-Timing's desc, the access log,
the span's cache events) and, for a stale copy, in the answer's `stale`.

A part the cache does not handle (cache off, or `Part.cached` False) goes straight to the
client, as before the cache existed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bff.cache import PartCache, PartRequest
from bff.cache.flow import Fetched, Served, Source, serve
from bff.clients.base import DownstreamClient
from bff.context import PartCall, RequestContext
from bff.deadline import Deadline
from bff.errors import DownstreamError
from bff.parts import Part

__all__ = ["PartFetcher"]


class _Answered(Exception):
    """A 404 that stands for a value (`Part.on_404`): an answer, but nothing to store."""

    def __init__(self, value: Any) -> None:
        super().__init__("answered without a body to store")
        self.value = value


class PartFetcher:
    """The request's parts through the cache; called once per part by the fan-out."""

    __slots__ = ("_cache", "_clients", "_ctx", "_product_id", "_refresh_budget_s")

    def __init__(
        self,
        clients: Mapping[str, DownstreamClient],
        cache: PartCache | None,
        product_id: str,
        ctx: RequestContext,
        *,
        refresh_budget_s: float,
    ) -> None:
        """`refresh_budget_s`: the deadline of a background (stale-while-revalidate) refresh,
        which runs after the request that started it may have been answered."""
        self._clients = clients
        self._cache = cache
        self._product_id = product_id
        self._ctx = ctx
        self._refresh_budget_s = refresh_budget_s

    async def __call__(self, part: Part[Any]) -> Any:
        ctx, client = self._ctx, self._clients[part.name]
        if self._cache is None or not part.cached:
            return await client.fetch(part, self._product_id, ctx)
        state = ctx.new_call(part.name)
        # The live call records into a state of its own: a call shared with other requests
        # may still be unwinding (cancelled) after this part has its value or its error.
        live = PartCall(part.name, state.started)
        try:
            served = await self._serve(self._cache, part, client, live)
        except _Answered as answered:
            state.outcome = "ok"
            return answered.value
        except DownstreamError as exc:
            state.outcome = exc.reason
            raise
        finally:
            state.attempts = live.attempts
            state.duration = ctx.elapsed() - state.started
        self._record(part, state, served)
        return served.value

    async def _serve(
        self, cache: PartCache, part: Part[Any], client: DownstreamClient, state: PartCall
    ) -> Served[Any]:
        ctx, product_id = self._ctx, self._product_id
        assert ctx.deadline is not None, "the handler sets the deadline before the fan-out"
        req = PartRequest.of(part.name, product_id, ctx.headers)

        async def call(etag: str | None) -> Fetched:
            return _fetched(await client.call(part, product_id, ctx, state, raw=True, etag=etag))

        async def refresh(etag: str | None) -> Fetched:
            own = RequestContext(ctx.id)
            own.deadline = Deadline(self._refresh_budget_s)
            own.headers = ctx.headers
            answer = await client.call(
                part, product_id, own, own.new_call(part.name), raw=True, etag=etag
            )
            return _fetched(answer)

        def decode(body: bytes) -> Any:  # a stored copy's body (a live one comes decoded)
            return part.decode_or_bad(body, product_id)

        # Wait for another request's live call until the deadline, not less (our own call ends
        # by it through the client's timeouts): a service told our budget gives up
        # 5 ms before it (the propagation margin) and says so, and that must reach us (a 2 ms
        # margin here cut it off in about one run in three); a stale-if-error copy is then a
        # memory lookup, well inside the fan-out's 5 ms of grace past the deadline.
        return await serve(cache, req, call, decode, until=ctx.deadline.at, refresh=refresh)

    def _record(self, part: Part[Any], state: PartCall, served: Served[Any]) -> None:
        """The part has a value: its call is "ok", whatever a failed live call said before a
        stale copy stood in for it."""
        state.outcome = "ok"
        state.source = served.source.value
        state.shareable = served.shareable
        state.fresh_for = served.fresh_for(time.time())
        if served.source is Source.STALE:
            self._ctx.stale[part.name] = served.age_s


def _fetched(answer: Any) -> Fetched:
    if isinstance(answer, Fetched):
        return answer
    raise _Answered(answer)
