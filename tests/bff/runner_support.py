"""The BFF behind its production runner (our protocol class) in the test's loop, and a way
to make that loop busy between a request's arrival and its handler."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from bff.edge.protocol import BffRequestHandler

Serve = Callable[..., Awaitable[str]]


def busy_after_receipt(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Every time bytes arrive, the loop is then blocked for `seconds` before anything else
    runs: the request has been received, but its handler waits in the worker's queue."""
    original = BffRequestHandler.data_received

    def data_received(self: BffRequestHandler, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(time.sleep, seconds)
        original(self, data)

    monkeypatch.setattr(BffRequestHandler, "data_received", data_received)
