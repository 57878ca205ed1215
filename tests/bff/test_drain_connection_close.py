"""While a worker drains, every response says `Connection: close` and the connection closes,
so keep-alive clients and load balancers reconnect to an instance that is not leaving.

The client here is a raw socket that keeps its connection alive (HTTP/1.1 without a
`Connection` header): a `close` in the answer can only come from the BFF.
"""

from __future__ import annotations

import asyncio

import pytest
from bff_support import BffClient

from bff.keys import LIFECYCLE

REQUEST = "GET {path} HTTP/1.1\r\nHost: bff.test\r\n\r\n"


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> dict[str, str]:
    """One request on an open keep-alive connection: the answer's status line and headers."""
    writer.write(REQUEST.format(path=path).encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, *lines = head.decode().split("\r\n")
    headers = {"status": status.split()[1]}
    for line in filter(None, lines):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    return headers


@pytest.mark.parametrize("path", ["/product-details/P001", "/readyz"])
async def test_a_keep_alive_connection_is_closed_while_draining(bff: BffClient, path: str) -> None:
    reader, writer = await asyncio.open_connection(bff.host, bff.port)
    try:
        before = await exchange(reader, writer, path)
        assert before.get("connection", "keep-alive").lower() != "close", "kept alive at first"
        bff.app[LIFECYCLE].draining = True
        during = await exchange(reader, writer, path)
        assert during.get("connection", "").lower() == "close"
        # ...and the server does close it: the next read is the end of the stream.
        assert await asyncio.wait_for(reader.read(1), 5) == b""
    finally:
        writer.close()
