"""A 304's verdict on a stored copy (RFC 9111 §4.3.4): is it ours, and how fresh is it now.

- A 304 naming another strong ETag is about another copy: ours is not confirmed.
- A 304 with its own `Cache-Control` decides the new freshness, read like a 200 (our copy's
  ETag and Vary standing in where the 304 leaves them out).
- Without one, the copy keeps the lifetimes it had, counted again from now.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import Enum

from multidict import CIMultiDict

from bff.cache.policy import Freshness, freshness, header, strong_etag

__all__ = ["NOT_OURS", "renewed"]


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
