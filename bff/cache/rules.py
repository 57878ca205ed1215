"""What a service lets a shared cache do with one response (RFC 9111, RFC 5861), decided once,
and what a 304 says of a stored copy (RFC 9111 §4.3.4).

`freshness(...)` reads `Cache-Control`, `Age`, `Date`, `ETag` and `Vary` when the response
arrives and turns them into absolute deadlines (epoch seconds, so a copy in Redis means the
same thing to every instance). Nothing is parsed again when the copy is served.

    dated_at ── fresh_until ── swr_until ──── sie_until
      fresh: serve    stale: serve and      stale: serve only when
      without a call  refresh in background the live call failed

Rules, for a *shared* cache (many users behind it):
- stored only with an explicit `max-age` or `s-maxage` (`s-maxage` wins); no `Cache-Control`,
  `no-store`, `Vary: *`, a garbage or contradictory header: not stored, never an error;
- `no-cache` (also the qualified form): stored only to revalidate (needs an `ETag`), never
  served stale; `must-revalidate`, `proxy-revalidate` and `s-maxage` forbid serving it stale;
- `private`, or a request that carried an identity (`Authorization`, a verified subject) and
  a response without `public`, `s-maxage` or `must-revalidate` (RFC 9111 §3.5): kept for that
  identity only (`shared=False`); with no identity to key it by, `private` is not stored;
- the copy's age at arrival (`Age`, or `Date` at its own one-second resolution) is
  subtracted; the lifetime is clamped to `max_ttl_s`, and so is each stale window.

A 304's verdict on a stored copy (`renewed`):
- a 304 naming another strong ETag is about another copy: ours is not confirmed;
- a 304 with its own `Cache-Control` decides the new freshness, read like a 200 (our copy's
  ETag and Vary standing in where the 304 leaves them out);
- without one, the copy keeps the lifetimes it had, counted again from now.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum

from multidict import CIMultiDict

__all__ = [
    "MAX_DELTA_S",
    "NOT_OURS",
    "Freshness",
    "freshness",
    "header",
    "parse_cache_control",
    "renewed",
    "strong_etag",
    "vary_names",
]

# RFC 9111 §1.2.2: a delta-seconds past 2^31 is taken as 2^31.
MAX_DELTA_S = 2**31
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DIRECTIVE = re.compile(r'\s*([^=\s,]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,\s]*))?\s*')
_DELTA_DIRECTIVES = frozenset(
    {"max-age", "s-maxage", "stale-while-revalidate", "stale-if-error", "age"}
)
# Directives whose two presences contradict each other: a service sending both is confused.
_CONTRADICTIONS = (("public", "private"), ("public", "no-store"))


@dataclass(frozen=True, slots=True)
class Freshness:
    """The deadlines of one stored response, in epoch seconds, and who may be served it.

    `dated_at`: when the copy was fresh from the service (its arrival minus the age it came
    with), so `now - dated_at` is its age.
    """

    dated_at: float
    fresh_until: float
    swr_until: float
    sie_until: float
    etag: str | None
    vary: tuple[str, ...]  # lower-case request header names, sorted
    shared: bool  # False: only the identity that asked may be served this copy

    @property
    def expires_at(self) -> float:
        """When the copy is of no use at all any more (the end of its last window)."""
        return max(self.fresh_until, self.swr_until, self.sie_until)


def parse_cache_control(value: str) -> dict[str, str | None] | None:
    """Directives by lower-case name (value unquoted, None when bare); None when garbage.

    Garbage: a name that is not a token, a malformed value, a delta-seconds directive without
    a non-negative integer, one directive given twice with different values.
    """
    directives: dict[str, str | None] = {}
    for item in value.split(","):
        if not item.strip():
            continue  # empty list elements are allowed (RFC 9110 §5.6.1)
        match = _DIRECTIVE.fullmatch(item)
        if match is None or _TOKEN.fullmatch(match.group(1)) is None:
            return None
        name, raw = match.group(1).lower(), match.group(2)
        arg = raw[1:-1].replace("\\", "") if raw and raw.startswith('"') else raw
        if name in _DELTA_DIRECTIVES and (arg is None or not _is_delta(arg)):
            return None
        if name in directives and directives[name] != arg:
            return None
        directives[name] = arg
    for a, b in _CONTRADICTIONS:
        if a in directives and b in directives:
            return None
    return directives


def vary_names(value: str | None) -> tuple[str, ...] | None:
    """The request header names a response varies on, sorted; None for `Vary: *` or garbage."""
    if value is None:
        return ()
    names = set()
    for item in value.split(","):
        name = item.strip().lower()
        if not name:
            continue
        if name == "*" or _TOKEN.fullmatch(name) is None:
            return None
        names.add(name)
    return tuple(sorted(names))


def freshness(
    headers: Mapping[str, str], *, now: float, identified: bool, max_ttl_s: float
) -> Freshness | None:
    """How long a 200 with these headers may be served, or None when it must not be stored.

    `identified`: the request carried `Authorization` or a verified subject.
    """
    cache_control = header(headers, "Cache-Control")
    if cache_control is None:
        return None
    rule = _rule(cache_control, header(headers, "Vary"), identified, max_ttl_s)
    if rule is None:
        return None
    etag = strong_etag(headers.get("ETag"))
    if rule.no_cache and etag is None:
        return None  # could only be stored to revalidate, and there is nothing to revalidate with
    age = _initial_age(headers, now)
    # Counted from when the copy was fresh from the service: the stale windows of a copy that
    # arrived already stale are shortened by as much as its freshness.
    fresh_until = now - age + rule.lifetime
    swr_until = fresh_until + rule.swr
    sie_until = fresh_until + rule.sie
    if max(fresh_until, sie_until, swr_until) <= now and etag is None:
        return None  # already stale, no stale window, nothing to revalidate with
    return Freshness(now - age, fresh_until, swr_until, sie_until, etag, rule.vary, rule.shared)


@dataclass(frozen=True, slots=True)
class _Rule:
    """What one `Cache-Control` and `Vary` pair allows, in seconds relative to the copy."""

    lifetime: float
    swr: float  # stale-while-revalidate window after freshness (0: none)
    sie: float  # stale-if-error window after freshness (0: none)
    no_cache: bool
    shared: bool
    vary: tuple[str, ...]


@functools.lru_cache(maxsize=512)
def _rule(
    cache_control: str, vary_header: str | None, identified: bool, max_ttl_s: float
) -> _Rule | None:
    """The header values' meaning, None when not storable. Memoised: a service sends the
    same few values over and over, and this runs for every 200 a part gets."""
    cc = parse_cache_control(cache_control)
    vary = vary_names(vary_header)
    if cc is None or vary is None or "no-store" in cc:
        return None
    lifetime_raw = cc.get("s-maxage", cc.get("max-age"))
    if lifetime_raw is None:
        return None
    shared = "public" in cc or "s-maxage" in cc or "must-revalidate" in cc
    if "private" in cc or (identified and not shared):
        if not identified:
            return None
        shared = False
    else:
        shared = True
    no_cache = "no-cache" in cc
    lifetime = 0.0 if no_cache else min(_delta(lifetime_raw), max_ttl_s)
    if no_cache or {"must-revalidate", "proxy-revalidate", "s-maxage"} & cc.keys():
        swr = sie = 0.0
    else:
        swr = min(_delta(cc.get("stale-while-revalidate")), max_ttl_s)
        sie = min(_delta(cc.get("stale-if-error")), max_ttl_s)
    return _Rule(lifetime, swr, sie, no_cache, shared, vary)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A field's value, its several lines joined with ", " (RFC 9110 §5.3) when the mapping
    holds several (aiohttp's multidicts do)."""
    getall = getattr(headers, "getall", None)
    if getall is None:
        return headers.get(name)
    values: list[str] = getall(name, [])
    return ", ".join(values) if values else None


def strong_etag(value: str | None) -> str | None:
    """A strong entity tag as sent, or None (a weak one cannot back a strong validator)."""
    if value is None:
        return None
    tag = value.strip()
    if len(tag) < 2 or len(tag) > 256 or tag[0] != '"' or tag[-1] != '"' or '"' in tag[1:-1]:
        return None
    return tag if tag.isascii() and tag.isprintable() else None


def _is_delta(arg: str) -> bool:
    return arg.isascii() and arg.isdigit() and len(arg) <= 20


def _delta(arg: str | None) -> float:
    return 0.0 if arg is None else float(min(int(arg), MAX_DELTA_S))


def _initial_age(headers: Mapping[str, str], now: float) -> float:
    """RFC 9111 §4.2.3's corrected initial age, without the response delay (ours is tiny).

    `Date` has a one-second resolution, so it is compared with the whole second of `now`:
    a copy dated this second is not aged by the fraction already gone. Garbage counts as 0.
    """
    age = 0.0
    raw_age = headers.get("Age")
    if raw_age is not None and _is_delta(raw_age.strip()):
        age = _delta(raw_age.strip())
    raw_date = headers.get("Date")
    if raw_date is not None:
        date = _http_date(raw_date)
        if date is None:
            return age
        age = max(age, float(int(now)) - date)
    return max(0.0, age)


@functools.lru_cache(maxsize=256)
def _http_date(raw: str) -> float | None:
    """Epoch seconds of an HTTP date, None for garbage. Memoised: every answer a service sends
    within one second carries the same `Date`, and parsing it costs ~15 us (py-spy: 1.5 % of
    a worker's time at zero latency, three parts a request)."""
    try:
        return parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class _NotOurs(Enum):
    NOT_OURS = "not ours"


NOT_OURS = _NotOurs.NOT_OURS


def renewed(
    old: Freshness,
    headers: Mapping[str, str],
    *,
    now: float,
    identified: bool,
    max_ttl_s: float,
) -> Freshness | _NotOurs | None:
    """The copy's new freshness; None when it may no longer be kept (it still answers the
    request at hand: the service just confirmed it); NOT_OURS when the 304 is about another
    copy."""
    etag = strong_etag(headers.get("ETag"))
    if etag is not None and etag != old.etag:
        return NOT_OURS
    if header(headers, "Cache-Control") is None:
        shift = now - old.dated_at
        return dataclasses.replace(
            old,
            dated_at=now,
            fresh_until=old.fresh_until + shift,
            swr_until=old.swr_until + shift,
            sie_until=old.sie_until + shift,
        )
    merged = CIMultiDict(headers)
    if old.etag is not None:
        merged.setdefault("ETag", old.etag)
    if old.vary:
        merged.setdefault("Vary", ", ".join(old.vary))
    return freshness(merged, now=now, identified=identified, max_ttl_s=max_ttl_s)
