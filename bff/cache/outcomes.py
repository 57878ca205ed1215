"""What the part cache answers: a request to look up (`PartRequest`), the verdict of a lookup
(`Lookup`), and a copy served because the live call failed (`StaleCopy`)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from bff.cache.entry import Entry
from bff.cache.keys import ANONYMOUS, base_key, identity_of

__all__ = ["Lookup", "PartRequest", "StaleCopy", "Verdict"]


class Verdict(enum.Enum):
    """What the caller does next; the value is the metric's `result` label."""

    FRESH = "hit"  # serve the copy, make no call
    STALE = "stale"  # serve the copy; refresh it in the background (stale-while-revalidate)
    REVALIDATE = "expired"  # call, with If-None-Match when the copy has an ETag
    MISS = "miss"  # call


@dataclass(frozen=True, slots=True)
class PartRequest:
    """One part of one request, as the cache sees it: the headers that go downstream decide
    which stored copy may answer it."""

    service: str
    headers: Mapping[str, str]  # lower-case names
    identity: str
    base: str

    @classmethod
    def of(cls, service: str, product_id: str, headers: Mapping[str, str]) -> PartRequest:
        """`headers`: exactly what the call sends downstream (Authorization, X-User-ID,
        Accept-Language...); per-request ones (X-Request-ID, traceparent) may be included."""
        lowered = {name.lower(): value for name, value in headers.items()}
        identity = identity_of(lowered)
        return cls(service, lowered, identity, base_key(service, product_id))

    @property
    def identified(self) -> bool:
        return self.identity != ANONYMOUS


@dataclass(frozen=True, slots=True)
class Lookup:
    """A lookup's verdict. `key`: where this request's copy lives, and the coalescing key.
    `entry`: the copy found (kept for REVALIDATE too: a 304 refreshes it, an error may serve it
    within its stale-if-error window)."""

    verdict: Verdict
    key: str
    entry: Entry | None = None

    @property
    def etag(self) -> str | None:
        """The validator to send as If-None-Match, if any."""
        return None if self.entry is None else self.entry.meta.etag

    def age_s(self, now: float) -> int:
        """The copy's age in whole seconds (0 without a copy)."""
        return 0 if self.entry is None else max(0, int(now - self.entry.meta.dated_at))


@dataclass(frozen=True, slots=True)
class StaleCopy:
    """A copy served because the live call failed, within its stale-if-error window."""

    body: bytes
    age_s: int
