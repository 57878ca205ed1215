"""Fixtures of the cache tests (helpers: `cache_support`)."""

from __future__ import annotations

import pytest
from cache_support import Clock


@pytest.fixture
def clock() -> Clock:
    """Epoch seconds the test moves (`clock.advance(s)`), for the caches it builds."""
    return Clock()
