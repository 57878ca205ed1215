"""`CachedFetcher`: one part of one request, through the part cache to its service's client.

    at_hand(part)  memory ─ FRESH ───────────────────────────────► copy         desc="cache"
                          ├ STALE ─ refresh in background (one per key) ► copy desc="cache"
                          └ else: not at hand; fetch() does the rest
    fetch(part)    (Redis, when memory missed)
                   REVALIDATE / MISS ─ one call per key for every concurrent request
                         (If-None-Match when we hold a tag; `_shared`)
                     ├ 304 ─ copy renewed ─────────────────────────► copy     desc="revalidated"
                     ├ 200 ─ stored if allowed ────────────────────► live answer (no desc)
                     │       joined another request's call ────────► its answer desc="coalesced"
                     └ failure (timeout, unavailable, circuit_open, overloaded, bad_response)
                             within stale-if-error ────────────────► copy + age  desc="stale"
                             else ─────────────────────────────────► the error

A part the cache does not handle (cache off, or `Part.cached` False) goes straight to the
client. A copy that no longer decodes is dropped and fetched again.

One call per key: the first request (the leader) makes the call in its own task (nothing
extra on the path nearly every call takes: most keys never see a second caller); requests
that arrive while it runs (followers) wait for it, each until its own deadline, shielded, so
a follower that leaves never cancels what the others wait for. A follower gets the leader's
answer only when the cache would have served that answer to it (`PartCache.same_answer`:
the answer's Vary and privacy checked against the follower's own headers; an answer that is
never stored only to requests the service could not tell apart); otherwise it makes its own
call. When the leader leaves (cancelled: its request answered without this part), or when
the leader's own shorter deadline ended the call with a timeout, a follower with time left
takes over with a call of its own: a client with a 30 ms budget never cuts the call short for
one with 500 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bff.cache.entry import Entry, Shape
from bff.cache.store import FRESH, STALE, Lookup, PartCache, View
from bff.client import DownstreamClient
from bff.context import PartCall, RequestContext
from bff.errors import DownstreamError, DownstreamTimeout
from bff.parts import Part

__all__ = ["NOT_AT_HAND", "CachedFetcher"]

# The failures a stored copy may stand in for; a 404 is an answer, not a failure.
STALE_REASONS = frozenset({"timeout", "unavailable", "circuit_open", "overloaded", "bad_response"})
NOT_AT_HAND: Any = object()


class _HandedOver(Exception):
    """The leader left, or its deadline ended the call: a follower makes the call instead."""


class _Outcome:
    """What a call for a key came to, as its followers get it: a value (and the copy stored,
    if any), or the error, with the HTTP status it came with (a 4xx is about the request
    that got it, not about the service)."""

    __slots__ = ("entry", "error", "source", "status", "value")

    def __init__(
        self,
        value: Any = None,
        entry: Entry | None = None,
        *,
        error: DownstreamError | None = None,
        status: int = 0,
        source: str = "",
    ) -> None:
        self.value = value
        self.entry = entry
        self.error = error
        self.status = status
        self.source = source


class _Flight:
    __slots__ = ("deadline_at", "result", "view")

    def __init__(self, view: View, deadline_at: float) -> None:
        self.view = view  # the leader's
        self.deadline_at = deadline_at  # the leader's: its call ends by then
        self.result: asyncio.Future[_Outcome] | None = None  # made when a follower comes


class CachedFetcher:
    """The parts of every request of one worker: the clients, and the cache in front."""

    __slots__ = ("_clients", "_flights", "_refresh_budget_s", "cache")

    def __init__(
        self,
        clients: Mapping[str, DownstreamClient],
        cache: PartCache | None,
        *,
        refresh_budget_s: float,
    ) -> None:
        """`refresh_budget_s`: the deadline of a background (stale-while-revalidate) refresh,
        which runs after the request that started it may have been answered."""
        self._clients = clients
        self.cache = cache
        self._refresh_budget_s = refresh_budget_s
        self._flights: dict[str, _Flight] = {}

    def bind(self, clients: Mapping[str, DownstreamClient], cache: PartCache | None) -> None:
        """The clients and the cache, once the app has made them (at start-up)."""
        self._clients = clients
        self.cache = cache

    def in_flight(self, key: str) -> bool:
        """A call for this key is running: joining it costs a request next to nothing."""
        return key in self._flights

    # -- what is at hand --------------------------------------------------------------------

    def at_hand(
        self, part: Part[Any], product_id: str, ctx: RequestContext, view: View | None
    ) -> tuple[Any, Lookup | None]:
        """(the part's value, or NOT_AT_HAND, and the memory lookup that decided it). A
        fresh copy, or a stale one within stale-while-revalidate (refreshed in the
        background), is at hand; anything else is fetch()'s business."""
        cache = self.cache
        if cache is None or view is None or not part.cached:
            return NOT_AT_HAND, None
        lookup = cache.lookup(part.name, product_id, view)
        verdict = lookup.verdict
        if verdict is not FRESH and verdict is not STALE:
            return NOT_AT_HAND, lookup
        entry = lookup.entry
        assert entry is not None
        value = entry.value
        if value is None:
            value = self._decoded(part, product_id, entry, lookup)
            if value is NOT_AT_HAND:
                return NOT_AT_HAND, lookup._replace(verdict="miss", entry=None)
        if verdict is STALE:
            self._refresh(part, product_id, ctx, view, lookup)
        call = ctx.new_call(part.name)
        call.outcome = "ok"
        call.source = "cache"
        call.duration = 0.0
        call.shareable = entry.meta.shared
        if verdict is FRESH:
            call.fresh_for = int(entry.meta.fresh_until - cache.clock())
        return value, lookup

    # -- a call -----------------------------------------------------------------------------

    async def fetch(
        self,
        part: Part[Any],
        product_id: str,
        ctx: RequestContext,
        view: View | None,
        lookup: Lookup | None,
    ) -> Any:
        """The part's value, or its `DownstreamError`, for a part that was not at hand."""
        call = ctx.new_call(part.name)
        client = self._clients[part.name]
        cache = self.cache
        if cache is None or not part.cached or view is None or lookup is None:
            reply = await client.fetch(part, product_id, ctx, call)
            if reply.error is not None:
                raise reply.error
            return reply.value
        if lookup.remote:
            lookup = await cache.lookup_remote(part.name, lookup, view)
            if lookup.verdict is FRESH or lookup.verdict is STALE:
                value, _ = self.at_hand_remote(part, product_id, ctx, view, lookup, call)
                if value is not NOT_AT_HAND:
                    return value
                lookup = lookup._replace(verdict="miss", entry=None)
        try:
            outcome = await self._shared(client, part, product_id, ctx, call, lookup, view)
        except TimeoutError:  # our deadline passed while waiting for somebody else's call
            outcome = _Outcome(error=DownstreamTimeout(part.name, "deadline reached"))
        error = outcome.error
        if error is not None:
            value = self._stale(part, product_id, ctx, call, lookup, error)
            call.outcome = "ok"
            call.duration = ctx.elapsed() - call.started
            return value
        call.outcome = "ok"
        if call.duration is None:
            call.duration = ctx.elapsed() - call.started
        if not call.source:
            call.source = outcome.source
        entry = outcome.entry
        if entry is not None:
            call.shareable = entry.meta.shared
            call.fresh_for = max(0, int(entry.meta.fresh_until - cache.clock()))
        return outcome.value

    def at_hand_remote(
        self,
        part: Part[Any],
        product_id: str,
        ctx: RequestContext,
        view: View,
        lookup: Lookup,
        call: PartCall,
    ) -> tuple[Any, Lookup]:
        """A copy Redis had: served like one memory had (in the part's record already made)."""
        entry = lookup.entry
        assert entry is not None
        assert self.cache is not None
        value = entry.value
        if value is None:
            value = self._decoded(part, product_id, entry, lookup)
            if value is NOT_AT_HAND:
                return NOT_AT_HAND, lookup
        if lookup.verdict is STALE:
            self._refresh(part, product_id, ctx, view, lookup)
        call.outcome = "ok"
        call.source = "cache"
        call.duration = ctx.elapsed() - call.started
        call.shareable = entry.meta.shared
        if lookup.verdict is FRESH:
            call.fresh_for = max(0, int(entry.meta.fresh_until - self.cache.clock()))
        return value, lookup

    async def _shared(
        self,
        client: DownstreamClient,
        part: Part[Any],
        product_id: str,
        ctx: RequestContext,
        call: PartCall,
        lookup: Lookup,
        view: View,
    ) -> _Outcome:
        """One call for every concurrent request of `lookup.key` that may share its answer:
        the first makes it (in its own task), the others follow."""
        key = lookup.key
        cache = self.cache
        flights = self._flights
        assert cache is not None
        while True:
            flight = flights.get(key)
            if flight is None:
                flight = flights[key] = _Flight(view, ctx.deadline_at)
                try:
                    outcome = await self._call(client, part, product_id, ctx, call, lookup, view)
                except BaseException as exc:
                    if flights.get(key) is flight:
                        del flights[key]
                    if (result := flight.result) is not None:
                        handed = isinstance(exc, asyncio.CancelledError)
                        result.set_exception(_HandedOver() if handed else exc)
                        result.exception()  # retrieved: followers that left are not logged
                    raise
                if flights.get(key) is flight:
                    del flights[key]
                if flight.result is not None:
                    flight.result.set_result(outcome)
                return outcome
            try:
                outcome = await self._follow(flight, ctx.deadline_at)
            except _HandedOver:
                continue  # the first follower back leads a new call, the others join it
            error = outcome.error
            if error is None:
                entry = outcome.entry
                shape = None if entry is None else Shape(entry.meta.vary, entry.meta.shared)
                shared = cache.same_answer(lookup.base, shape, flight.view, view)
            elif error.reason == "timeout" and flight.deadline_at < ctx.deadline_at - 0.001:
                continue  # the leader's shorter deadline ended it: ours may still see it
            else:
                # A failure of the service is everybody's; a 4xx is about the request that
                # got it.
                shared = not 400 <= outcome.status < 500 or flight.view.cold == view.cold
            if shared:
                cache.count(part.name, "coalesced")
                call.source = "coalesced"
                return outcome
            # Not an answer the cache would give us: a call of our own, shared only with
            # requests the service could not tell from ours.
            key = f"{lookup.key}|o{view.cold}"

    @staticmethod
    async def _follow(flight: _Flight, until: float) -> _Outcome:
        if flight.result is None:
            flight.result = asyncio.get_running_loop().create_future()
        async with asyncio.timeout_at(until):
            # Shielded: a follower that leaves must not cancel what the others wait for.
            return await asyncio.shield(flight.result)

    async def _call(
        self,
        client: DownstreamClient,
        part: Part[Any],
        product_id: str,
        ctx: RequestContext,
        call: PartCall,
        lookup: Lookup,
        view: View,
    ) -> _Outcome:
        """The live call, with If-None-Match when we hold a tag, and what it leaves stored."""
        cache = self.cache
        assert cache is not None
        entry = lookup.entry
        etag = None if entry is None else entry.meta.etag
        reply = await client.fetch(part, product_id, ctx, call, etag=etag)
        if reply.status == 304 and reply.error is None:
            assert reply.headers is not None
            renewed = cache.revalidated(part.name, view, lookup, reply.headers)
            if renewed is not None:
                value = renewed.value
                if value is None:
                    value = self._decoded(part, product_id, renewed, lookup)
                if value is not NOT_AT_HAND:
                    return _Outcome(value, renewed, source="revalidated")
            # The 304 was not about our copy (or the copy no longer decodes): ask plainly.
            reply = await client.fetch(part, product_id, ctx, call)
        if reply.error is not None:
            return _Outcome(error=reply.error, status=reply.status)
        if reply.status != 200:  # a 404 standing for a value: an answer, nothing to store
            return _Outcome(reply.value)
        assert reply.headers is not None
        entry = cache.store(part.name, view, lookup, reply.headers, reply.body, reply.value)
        return _Outcome(reply.value, entry)

    def _stale(
        self,
        part: Part[Any],
        product_id: str,
        ctx: RequestContext,
        call: PartCall,
        lookup: Lookup,
        error: DownstreamError,
    ) -> Any:
        """The stored copy standing in for a failed call (stale-if-error), or the error."""
        cache = self.cache
        entry = lookup.entry
        if cache is None or entry is None or error.reason not in STALE_REASONS:
            raise error
        age = cache.stale_if_error(part.name, lookup)
        if age is None:
            raise error
        value = entry.value
        if value is None:
            value = self._decoded(part, product_id, entry, lookup)
            if value is NOT_AT_HAND:
                raise error
        call.source = "stale"
        ctx.stale[part.name] = age
        return value

    def _decoded(self, part: Part[Any], product_id: str, entry: Entry, lookup: Lookup) -> Any:
        """A stored body's value (decoded once: a copy from Redis comes as bytes), or
        NOT_AT_HAND when it no longer decodes (the copy is dropped)."""
        try:
            entry.value = part.decode(entry.body, product_id)
        except Exception:  # any decoding error: see bff.client.mapped_error
            assert self.cache is not None
            self.cache.drop(lookup)
            return NOT_AT_HAND
        return entry.value

    def _refresh(
        self, part: Part[Any], product_id: str, ctx: RequestContext, view: View, lookup: Lookup
    ) -> None:
        """Stale-while-revalidate: a conditional call in the background, one per key, with a
        deadline of its own (the request that started it may be answered first)."""
        cache = self.cache
        assert cache is not None
        client = self._clients[part.name]
        own = RequestContext.background(ctx, self._refresh_budget_s)

        async def refresh() -> None:
            call = PartCall(part.name, 0.0)
            await self._call(client, part, product_id, own, call, lookup, view)

        cache.refresh_in_background(lookup.key, refresh)
