"""Fixtures shared by every test directory."""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest
from required_tools import require_tool


@pytest.fixture(scope="session")
def binary() -> Callable[[str], str]:
    """`binary("redis-server")`: its path; else a skip, or a failure when required."""
    return require_tool


@pytest.fixture(scope="module", autouse=True)
def settled_heap() -> None:
    """Each test module starts on a heap collected and frozen, as a worker's is once listening
    (`bff.server.settle_heap`). Without it the test process's heap grows with every module
    (348k objects by the load tests) and a full collection of it paused the loop for 200+ ms
    mid-test: enough to spend a request's deadline on nothing (a CI run lost a retry to it).
    Only what survives a collection is frozen, and only objects new since are scanned."""
    gc.collect()
    gc.freeze()
