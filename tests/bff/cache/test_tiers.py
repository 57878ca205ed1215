"""The memory tier (an LRU bounded in bytes) and the stored records' wire form."""

from __future__ import annotations

import msgspec
import pytest

from bff.cache.entry import (
    RECORD_OVERHEAD,
    WIRE_VERSION,
    Entry,
    Shape,
    decode_entry,
    decode_shape,
    encode,
)
from bff.cache.rules import Freshness
from bff.cache.store import MemoryTier

NOW = 1_800_000_000.0


def entry(
    body: bytes = b"{}", *, fresh: float = 60, sie: float = 600, etag: str | None = None
) -> Entry:
    meta = Freshness(
        NOW, NOW + fresh, NOW + fresh, NOW + fresh + sie, etag, ("accept-language",), True
    )
    return Entry(body, meta)


class TestMemoryTier:
    """Bounded in bytes, least recently used first out; too large a record is not kept."""

    def test_keeps_and_returns(self) -> None:
        tier = MemoryTier(10_000)
        e = entry(b"x" * 100)
        assert tier.put("k", e)
        assert tier.entry("k", NOW) is e
        assert tier.bytes_used == 100 + RECORD_OVERHEAD
        assert tier.shape("k") is None  # an entry is not a shape

    def test_evicts_least_recently_used_by_bytes(self) -> None:
        tier = MemoryTier(3 * (1000 + RECORD_OVERHEAD))
        for key in ("a", "b", "c"):
            tier.put(key, entry(b"x" * 1000))
        assert tier.entry("a", NOW) is not None  # a is now the most recently used
        tier.put("d", entry(b"x" * 1000))
        assert tier.entry("b", NOW) is None
        assert {k for k in "acd" if tier.entry(k, NOW)} == {"a", "c", "d"}
        assert tier.bytes_used == 3 * (1000 + RECORD_OVERHEAD)

    def test_a_record_of_exactly_the_budget_is_kept(self) -> None:
        tier = MemoryTier(1000 + RECORD_OVERHEAD)
        assert tier.put("k", entry(b"x" * 1000))
        assert tier.entry("k", NOW) is not None

    def test_too_large_is_refused_and_forgets_the_old_copy(self) -> None:
        tier = MemoryTier(2000)
        assert tier.put("k", entry(b"small"))
        assert not tier.put("k", entry(b"x" * 5000))
        assert tier.entry("k", NOW) is None
        assert len(tier) == 0

    def test_replacing_and_dropping_keep_the_byte_count_exact(self) -> None:
        tier = MemoryTier(10_000)
        tier.put("k", entry(b"x" * 100))
        tier.put("k", entry(b"x" * 300))
        tier.put("s", Shape((), True))
        assert tier.bytes_used == 300 + 2 * RECORD_OVERHEAD
        tier.drop("k")
        tier.drop("missing")
        assert tier.bytes_used == RECORD_OVERHEAD
        assert len(tier) == 1

    def test_expired_without_validator_is_dropped(self) -> None:
        tier = MemoryTier(10_000)
        tier.put("k", entry(fresh=1, sie=1))
        tier.put("v", entry(fresh=1, sie=1, etag='"t"'))
        later = NOW + 5
        assert tier.entry("k", later) is None
        assert len(tier) == 1
        assert tier.entry("v", later) is not None  # still good to revalidate with

    def test_a_copy_is_of_no_use_from_the_instant_its_last_window_closes(self) -> None:
        tier = MemoryTier(10_000)
        tier.put("k", entry(fresh=1, sie=1))  # of use until NOW + 2, exclusive
        assert tier.entry("k", NOW + 1.999) is not None
        assert tier.entry("k", NOW + 2) is None

    def test_shapes(self) -> None:
        tier = MemoryTier(10_000)
        tier.put("base", Shape(("accept-language",), False))
        assert tier.shape("base") == Shape(("accept-language",), False)
        assert tier.entry("base", NOW) is None


class TestWireForm:
    """Compact versioned msgpack; anything else decodes to None (a miss), never raises."""

    def test_round_trip(self) -> None:
        e = entry(b'{"id": "P001"}', etag='"abc"')
        back = decode_entry(encode(e))
        assert back is not None
        assert (back.body, back.meta) == (e.body, e.meta)
        assert back.value is None  # a copy from Redis is decoded on its first use
        s = Shape(("accept-language",), True)
        assert decode_shape(encode(s)) == s
        assert len(encode(e)) < len(e.body) + 100

    @pytest.mark.parametrize(
        "raw",
        [
            b"",
            b"\xff\xfe garbage",
            b"+OK\r\n",
            msgspec.msgpack.encode([WIRE_VERSION + 1, b"x", 1.0, 1.0, 1.0, 1.0, None, [], True]),
            msgspec.msgpack.encode([WIRE_VERSION, "not bytes", 1.0]),
            msgspec.msgpack.encode({"body": b"x"}),
            b"\x91" * 100_000,  # deep nesting
        ],
    )
    def test_garbage_is_none(self, raw: bytes) -> None:
        assert decode_entry(raw) is None
        assert decode_shape(raw) is None

    def test_entry_is_not_a_shape(self) -> None:
        assert decode_shape(encode(entry())) is None
        assert decode_entry(encode(Shape((), True))) is None
