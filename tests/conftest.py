"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from required_tools import require_tool


@pytest.fixture(scope="session")
def binary() -> Callable[[str], str]:
    """`binary("redis-server")`: its path; else a skip, or a failure when required."""
    return require_tool
