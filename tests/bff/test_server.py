"""The worker tunes the cyclic GC once its app is built (py-spy: GC was ~20% of a request)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bff import server


@pytest.fixture
def restore_gc() -> Iterator[None]:
    """The heap as a fresh process has it (nothing frozen, CPython's young threshold of 700),
    whatever the suite's own settling did; settled again after."""
    threshold = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, *threshold[1:])
    yield
    gc.set_threshold(*threshold)
    gc.freeze()


def test_settle_heap_freezes_start_up_objects_and_raises_the_young_threshold(
    restore_gc: None,
) -> None:
    _, older, oldest = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    server.settle_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (server._YOUNG_GC_THRESHOLD, older, oldest)
