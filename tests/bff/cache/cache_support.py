"""Helpers for the cache tests: a real redis-server that a test may kill, a server that
answers junk, a clock the test moves, and response headers as aiohttp gives them."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time

import pytest
from multidict import CIMultiDict, CIMultiDictProxy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server on a loopback port; `kill()` and `start()` again on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed here (CI installs it: see .ci/run)")
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=5)
            self.proc = None


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
