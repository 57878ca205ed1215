"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from redis_support import RedisServer
from required_tools import require_tool

from bff.server import settle_heap


@pytest.fixture(scope="session")
def binary() -> Callable[[str], str]:
    """`binary("redis-server")`: its path; else a skip, or a failure when required."""
    return require_tool


@pytest.fixture(scope="module", autouse=True)
def settled_heap() -> None:
    """Each test module starts on a heap settled as a worker's is once listening
    (`bff.server.settle_heap`: collected, frozen, a young generation of 7000). Without it the
    test process's heap grows with every module (376k objects by the end) and a full
    collection of it paused the loop for 100-300 ms mid-test: enough to spend a request's
    deadline on nothing (a CI run lost a retry to it). Only what survives a collection is
    frozen, and only objects new since are scanned."""
    settle_heap()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server, started for the test and killed after it, whatever happened."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()
