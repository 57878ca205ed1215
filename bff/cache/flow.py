"""`serve(...)`: one part through the cache, the order of every rule in one function.

    lookup ─ FRESH ──────────────────────────────────────────► copy          desc="cache"
           ├ STALE ─ refresh in background (one per key) ─────► copy          desc="cache"
           └ REVALIDATE / MISS ─ coalesced call (If-None-Match when we hold a tag)
                 ├ 304 ─ copy renewed ────────────────────────► copy          desc="cache"
                 ├ 200 ─ decoded, stored if allowed ──────────► live answer   (no desc)
                 │       joined another caller's call ────────► its answer    desc="coalesced"
                 └ failure (timeout, unavailable, circuit_open, overloaded, bad_response)
                         within stale-if-error ───────────────► copy + age    desc="stale"
                         else ────────────────────────────────► the error

A copy that no longer decodes is dropped and fetched again. The client path supplies two
functions, which is all this module knows of it:

- `call(etag)`: one downstream GET (retries, breaker and timeouts inside), sending
  `If-None-Match: etag` when `etag` is not None; returns a `Fetched` (200 or 304; a 304 only
  when an etag was sent) or raises a `DownstreamError`, by the caller's deadline (it runs in
  the caller's task, unbounded by anything here: ours ends through the client's per-attempt
  timeouts);
- `decode(body)`: the typed value, or raises `BadResponse`.

A stale-while-revalidate refresh runs after the request that started it may have finished:
pass `refresh`, a `call` bound to a budget of its own, when `call` is tied to the request's
deadline.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bff.cache.entry import Entry
from bff.cache.outcomes import Lookup, PartRequest, Verdict
from bff.cache.part_cache import PartCache
from bff.clients.transport import Fetched
from bff.errors import DownstreamError, DownstreamTimeout

__all__ = ["Fetched", "Served", "Source", "serve"]

T = TypeVar("T")
# The failures a stored copy may stand in for; a 404 is an answer, not a failure.
STALE_REASONS = frozenset({"timeout", "unavailable", "circuit_open", "overloaded", "bad_response"})


class Source(enum.Enum):
    """Where a part's value came from; the value is Server-Timing's desc ("" for live)."""

    LIVE = ""
    CACHE = "cache"
    COALESCED = "coalesced"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Served(Generic[T]):
    """A part's value, where it came from, and the stored copy behind it (if any)."""

    value: T
    source: Source
    entry: Entry | None = None
    age_s: int = 0  # for STALE: the copy's age in whole seconds

    @property
    def shareable(self) -> bool:
        return self.entry is not None and self.entry.meta.shared

    def fresh_for(self, now: float) -> int:
        """Whole seconds this value stays fresh (0 when not stored or already stale)."""
        if self.entry is None or self.source is Source.STALE:
            return 0
        return max(0, int(self.entry.meta.fresh_until - now))


async def serve(
    cache: PartCache,
    req: PartRequest,
    call: Callable[[str | None], Awaitable[Fetched]],
    decode: Callable[[bytes], T],
    *,
    until: float | None = None,
    refresh: Callable[[str | None], Awaitable[Fetched]] | None = None,
) -> Served[T]:
    """The part's value under the cache's rules. `until` (loop time): when this caller stops
    waiting for another caller's live call (a coalesced call goes on for the others); past
    it, stale-if-error applies. The caller's own live call must bound itself (ours ends by the
    request's deadline); its timeout is a failure like any other.
    `refresh`: the call a background refresh makes (default: `call`)."""
    lookup = await cache.lookup(req)
    if lookup.verdict in (Verdict.FRESH, Verdict.STALE) and lookup.entry is not None:
        try:
            value = decode(lookup.entry.body)
        except DownstreamError:
            cache.drop(lookup)
            lookup = Lookup(Verdict.MISS, lookup.key)
        else:
            if lookup.verdict is Verdict.STALE:
                again = refresh or call
                cache.refresh_in_background(
                    lookup, lambda: _fetch(cache, req, lookup, again, decode)
                )
            return Served(value, Source.CACHE, lookup.entry)

    def fetch() -> Awaitable[Served[T]]:
        return _fetch(cache, req, lookup, call, decode)

    def shareable(served: Served[T]) -> bool:
        return served.shareable

    try:
        served, joined = await cache.coalesce(req, lookup, fetch, shareable, until=until)
    except (DownstreamError, TimeoutError) as exc:
        error = (
            exc if isinstance(exc, DownstreamError) else DownstreamTimeout(req.service, "deadline")
        )
        if error.reason not in STALE_REASONS:
            raise error from None
        stale = _stale(cache, req, lookup, decode)
        if stale is None:
            raise error from None
        return stale
    return Served(served.value, Source.COALESCED, served.entry) if joined else served


async def _fetch(
    cache: PartCache,
    req: PartRequest,
    lookup: Lookup,
    call: Callable[[str | None], Awaitable[Fetched]],
    decode: Callable[[bytes], T],
) -> Served[T]:
    fetched = await call(lookup.etag)
    if fetched.status == 304:
        entry = cache.revalidated(req, lookup, fetched.headers)
        if entry is not None:
            try:
                return Served(decode(entry.body), Source.CACHE, entry)
            except DownstreamError:
                cache.drop(lookup)
        fetched = await call(None)  # the 304 was not about our copy: ask again, plainly
    # A body the client already decoded and checked is not decoded again.
    value = decode(fetched.body) if fetched.value is None else fetched.value
    return Served(value, Source.LIVE, cache.store(req, lookup, fetched.headers, fetched.body))


def _stale(
    cache: PartCache, req: PartRequest, lookup: Lookup, decode: Callable[[bytes], T]
) -> Served[T] | None:
    copy = cache.stale_if_error(req, lookup)
    if copy is None:
        return None
    try:
        value = decode(copy.body)
    except DownstreamError:
        cache.drop(lookup)
        return None
    return Served(value, Source.STALE, lookup.entry, copy.age_s)
