"""A stored copy (`Entry`) and a key's shape (`Shape`), and their compact, versioned wire form.

Both tiers hold the same two kinds of record. The memory tier keeps the objects; the Redis
tier keeps `encode(...)`: msgpack arrays whose first item is `WIRE_VERSION`. The decoders turn
anything else (an older version, a truncated value, another program's data) into None, so
a record that cannot be read is a miss, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from bff.cache.rules import Freshness

__all__ = [
    "RECORD_OVERHEAD",
    "WIRE_VERSION",
    "Entry",
    "Shape",
    "decode_entry",
    "decode_shape",
    "encode",
]

WIRE_VERSION = 1
# Bookkeeping per record in the memory tier (the objects, the key, the LRU's links): tracemalloc
# measured ~600 bytes per stored part besides its body, an entry and its shape (two records).
RECORD_OVERHEAD = 400


class Entry:
    """The raw body of a 200, as the service sent it, and what may be done with it; in the
    memory tier also its decoded value, so that a hit decodes nothing (a copy read from Redis
    is decoded once, on its first use). Values are frozen structs: sharing them is safe.
    `size`: what it costs the memory tier."""

    __slots__ = ("body", "meta", "size", "value")

    def __init__(self, body: bytes, meta: Freshness, value: Any = None) -> None:
        self.body = body
        self.meta = meta
        self.value = value
        self.size = len(body) + RECORD_OVERHEAD

    def __repr__(self) -> str:
        return f"Entry({len(self.body)} bytes, {self.meta!r})"


@dataclass(frozen=True, slots=True)
class Shape:
    """What the last response for a (service, id) said about its siblings: the request
    headers it varies on, and whether one copy serves every identity. `uncacheable`: the last
    response could not be stored (no copy to look for; concurrent calls are shared only by
    requests the service could not tell apart, whatever it said it varies on); until
    `uncacheable_until` (epoch seconds) a lookup does not even ask Redis (a `no-store` service
    would otherwise cost a Redis round trip on every request)."""

    vary: tuple[str, ...]
    shared: bool
    uncacheable_until: float = 0.0
    uncacheable: bool = False
    size: int = field(default=RECORD_OVERHEAD, init=False, repr=False, compare=False)


class _EntryWire(msgspec.Struct, array_like=True, frozen=True):
    version: int
    body: bytes
    dated_at: float
    fresh_until: float
    swr_until: float
    sie_until: float
    etag: str | None
    vary: tuple[str, ...]
    shared: bool


class _ShapeWire(msgspec.Struct, array_like=True, frozen=True):
    version: int
    vary: tuple[str, ...]
    shared: bool
    uncacheable_until: float
    uncacheable: bool = False


_encoder = msgspec.msgpack.Encoder()
_entry_decoder = msgspec.msgpack.Decoder(_EntryWire)
_shape_decoder = msgspec.msgpack.Decoder(_ShapeWire)


def encode(record: Entry | Shape) -> bytes:
    if isinstance(record, Shape):
        return _encoder.encode(
            _ShapeWire(
                WIRE_VERSION,
                record.vary,
                record.shared,
                record.uncacheable_until,
                record.uncacheable,
            )
        )
    m = record.meta
    return _encoder.encode(
        _EntryWire(
            WIRE_VERSION,
            record.body,
            m.dated_at,
            m.fresh_until,
            m.swr_until,
            m.sie_until,
            m.etag,
            m.vary,
            m.shared,
        )
    )


def decode_entry(raw: bytes) -> Entry | None:
    """The entry in `raw`, or None when it is not one we wrote (any version but ours)."""
    try:
        w = _entry_decoder.decode(raw)
    except Exception:  # msgspec raises several kinds on hostile input; all of them are a miss
        return None
    if w.version != WIRE_VERSION:
        return None
    meta = Freshness(w.dated_at, w.fresh_until, w.swr_until, w.sie_until, w.etag, w.vary, w.shared)
    return Entry(w.body, meta)


def decode_shape(raw: bytes) -> Shape | None:
    try:
        w = _shape_decoder.decode(raw)
    except Exception:  # see decode_entry
        return None
    if w.version != WIRE_VERSION:
        return None
    return Shape(w.vary, w.shared, w.uncacheable_until, w.uncacheable)


def belongs(entry: Entry, shape: Shape, now: float) -> bool:
    """A copy from Redis answers a request only if it was stored under the same rules
    (another instance may have written a different shape since)."""
    meta = entry.meta
    alive = now < meta.expires_at or meta.etag is not None
    return alive and meta.vary == shape.vary and meta.shared == shape.shared
