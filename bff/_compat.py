"""Every use of a private aiohttp API, in one place, each pinned by tests/bff/test_compat.py.

An aiohttp upgrade that renames or changes one of these fails that test loudly, instead of
silently turning a feature off.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

# --- Server side: the receive time of a request (bff.edge.arrival) -------------------------
# aiohttp has no public hook for "a connection's bytes arrived" and records no receive time on
# a request: the protocol class is the only place that sees the bytes before the loop gets to
# the handler.

H = TypeVar("H", bound=RequestHandler)


def new_request_handler(server: Server, handler_class: type[H]) -> H:
    """What `Server.__call__` does, with our own protocol class (it needs its own slot, so
    swapping `__class__` on aiohttp's instance is not enough). Unlike aiohttp we do not retry
    with filtered kwargs: ours come from `bff.edge.server_limits`, and a bad one should fail."""
    kwargs: dict[str, Any] = server._kwargs
    return handler_class(server, loop=server._loop, **kwargs)


def connection_idle(handler: RequestHandler) -> bool:
    """No request of this connection is being handled or waiting to be: bytes arriving now
    start a new request (HTTP/1.1 without pipelining)."""
    return not handler._request_in_progress and not handler._messages
