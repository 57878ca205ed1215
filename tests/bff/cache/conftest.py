"""Fixtures of the part-cache tests: a real redis-server on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cache_support import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """Started for the test and killed after it, whatever happened."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()
