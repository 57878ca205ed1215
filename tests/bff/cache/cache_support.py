"""Helpers for the cache tests: a server that answers junk, a clock the test moves, and
response headers as aiohttp gives them (a real redis-server: `redis_support`)."""

from __future__ import annotations

import asyncio

from multidict import CIMultiDict, CIMultiDictProxy
from redis_support import RedisServer, free_port

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
