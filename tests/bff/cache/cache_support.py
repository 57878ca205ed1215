"""Helpers for the cache tests: a server that answers junk, a clock the test moves, response
headers as aiohttp gives them, and one part of one request as the part cache sees it (a real
redis-server: `redis_support`)."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from multidict import CIMultiDict, CIMultiDictProxy
from redis_support import RedisServer, free_port

from bff.cache.entry import Entry
from bff.cache.store import Lookup, PartCache, View

__all__ = ["RedisServer", "free_port"]


async def junk_server(reply: bytes) -> asyncio.Server:
    """A TCP server on loopback that answers every read with `reply` (not Redis' protocol)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(4096):
                writer.write(reply)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


class Clock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self, now: float = 1_800_000_000.5) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def headers(**fields: str) -> CIMultiDictProxy[str]:
    """Response headers, case-insensitive like aiohttp's: `headers(Cache_Control="...")`."""
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in fields.items()}))


def lines(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    """Headers where a field may be given on several lines."""
    return CIMultiDictProxy(CIMultiDict(pairs))


PRODUCT_CC = "max-age=60, stale-while-revalidate=30, stale-if-error=600"
ALICE = {"Authorization": "Bearer alice"}
BOB = {"Authorization": "Bearer bob"}


class Req(NamedTuple):
    """One part of one request: its service, its id, and what of it the cache sees."""

    service: str
    pid: str
    view: View

    @property
    def identity(self) -> str:
        return self.view.identity


def req(pid: str = "P001", service: str = "product", **fields: str) -> Req:
    forwarded = {k.replace("_", "-").lower(): v for k, v in fields.items()}
    return Req(service, pid, View(forwarded))


async def look(cache: PartCache, r: Req) -> Lookup:
    """What the cache has for `r`: memory, then Redis when memory cannot tell."""
    lookup = cache.lookup(r.service, r.pid, r.view)
    if lookup.remote:
        lookup = await cache.lookup_remote(r.service, lookup, r.view)
    return lookup


def store(cache: PartCache, r: Req, lookup: Lookup, body: bytes = b"{}", **h: str) -> Entry | None:
    return cache.store(r.service, r.view, lookup, headers(**h), body, None)


def revalidated(cache: PartCache, r: Req, lookup: Lookup, h: Any) -> Entry | None:
    return cache.revalidated(r.service, r.view, lookup, h)
