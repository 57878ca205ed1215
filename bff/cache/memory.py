"""The memory tier: one LRU per worker, bounded in bytes, holding entries and shapes.

An `OrderedDict` in least-recently-used order, and a running total of the records' sizes:
a get is a lookup and a `move_to_end` (both in C), an insert evicts from the front until the
total fits. (cachetools' `LRUCache` did the same bookkeeping through several Python calls a
get: ~1 µs a get and 1-3.5 µs an insert, on a path every part takes.) A record larger than
the whole budget is not kept. Records past their last window are dropped when read. This
tier never blocks and never raises.
"""

from __future__ import annotations

from collections import OrderedDict

from bff.cache.entry import Entry, Shape

__all__ = ["MemoryTier"]

Record = Entry | Shape


class MemoryTier:
    __slots__ = ("_lru", "_max_bytes", "_used")

    def __init__(self, max_bytes: int) -> None:
        self._lru: OrderedDict[str, Record] = OrderedDict()
        self._max_bytes = max_bytes
        self._used = 0

    @property
    def bytes_used(self) -> int:
        return self._used

    def __len__(self) -> int:
        return len(self._lru)

    def entry(self, key: str, now: float) -> Entry | None:
        record = self._get(key)
        if not isinstance(record, Entry):
            return None
        if record.meta.expires_at <= now and record.meta.etag is None:
            self.drop(key)
            return None
        return record

    def shape(self, key: str) -> Shape | None:
        record = self._get(key)
        return record if isinstance(record, Shape) else None

    def put(self, key: str, record: Record) -> bool:
        """Keep `record` (evicting the least recently used); False when it is too large (an
        older copy under the key is dropped all the same: it would now be wrong)."""
        lru = self._lru
        self.drop(key)
        size = record.size
        if size > self._max_bytes:
            return False
        lru[key] = record
        self._used += size
        while self._used > self._max_bytes:
            _, evicted = lru.popitem(last=False)
            self._used -= evicted.size
        return True

    def drop(self, key: str) -> None:
        record = self._lru.pop(key, None)
        if record is not None:
            self._used -= record.size

    def _get(self, key: str) -> Record | None:
        record = self._lru.get(key)
        if record is not None:
            self._lru.move_to_end(key)
        return record
