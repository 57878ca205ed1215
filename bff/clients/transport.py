"""Send one GET to one instance and read its answer: the only module that touches the network.

The body of a 200 is read under a byte cap; other bodies are never decoded, and read (when
their declared length is small) only so the connection can be reused. Every exception
aiohttp can raise while sending or reading, and any broken `Retry-After`, comes out as a
`DownstreamError` (`map_exceptions`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from bff.clients.mapping import map_exceptions, retry_after
from bff.errors import BadResponse, DownstreamError
from bff.resilience.pool import Instance

_ERROR_BODY_CAP = 64 * 1024


class Endpoint(Protocol):
    """What a call needs of the part it fetches (`bff.parts.Part` is one)."""

    @property
    def prefix(self) -> str: ...
    @property
    def on_404(self) -> Callable[[], Any] | None: ...
    @property
    def not_found(self) -> type[DownstreamError]: ...
    def path(self, product_id: str) -> str: ...
    def decode(self, body: bytes, product_id: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Fetched:
    """A service's answer as the part cache takes it: 200 or 304, its headers, its body."""

    status: int  # 200 or 304
    headers: Mapping[str, str]  # case-insensitive (aiohttp's)
    body: bytes
    # The body already decoded (and checked) by the client, so that it is not decoded twice.
    value: Any = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What a service said: its status, the body of a 200, its `Retry-After` in seconds, and
    the (released) response, which is what aiohttp-retry's loop is handed back."""

    status: int
    body: bytes
    retry_after: float | None
    response: aiohttp.ClientResponse


async def send(
    session: aiohttp.ClientSession,
    instance: Instance,
    path: str,
    headers: dict[str, str],
    *,
    service: str,
    timeout_s: float,
    max_body_bytes: int,
) -> Answer:
    """One GET, bounded by `timeout_s` from now, body included."""
    base = instance.base_url
    # A URL object, not a string: aiohttp would parse and re-quote the string on every call
    # (~5 us each). The path needs no quoting: ids are [A-Za-z0-9_-] only.
    url = base.with_path(base.raw_path.rstrip("/") + path, encoded=True)
    # An address found under a name (bff.resilience.discovery) is called as that name: its
    # Host header, and for TLS its SNI and certificate check.
    if (host := instance.host_header) is not None:
        headers = {**headers, "Host": host}
    server_hostname = instance.host if url.scheme == "https" else None
    with map_exceptions(service, timeout_s):
        async with asyncio.timeout(timeout_s):
            async with session.get(
                url, headers=headers, allow_redirects=False, server_hostname=server_hostname
            ) as resp:
                if resp.status == 200:
                    body = await _read_capped(resp, max_body_bytes, service)
                    return Answer(200, body, None, resp)
                # A small error body of a declared length is read to its end, so the
                # connection can be reused; any other is not waited for (the error is the
                # answer) and its connection closes. One `content.read(n)` would only take
                # what had arrived so far.
                if (length := resp.content_length) is not None and length <= _ERROR_BODY_CAP:
                    await resp.read()
                wait = retry_after(resp.headers.get("Retry-After"))
                return Answer(resp.status, b"", wait, resp)


async def _read_capped(resp: aiohttp.ClientResponse, cap: int, service: str) -> bytes:
    length = resp.content_length
    if length is not None and length > cap:
        raise BadResponse(service, f"body of {length} bytes exceeds the {cap}-byte cap")
    if length is not None and "Content-Encoding" not in resp.headers:
        return await resp.read()
    # Unknown or compressed length: count the decoded bytes as they arrive.
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > cap:
            raise BadResponse(service, f"body exceeds the {cap}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)
