"""Counts over a sliding window of whole seconds (the breaker's failure rate, the retry
budget): an event counts for `window_s` seconds (rounded up to whole seconds, at least one),
then leaves. A window kept too long keeps a recovered service's old failures against it."""

from __future__ import annotations

import time

import pytest

from bff.resilience.window import SlidingCounts


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.25]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def totals_after(counts: SlidingCounts, clock: list[float], seconds: float) -> list[int]:
    clock[0] += seconds
    counts.current()
    return list(counts.totals)


class TestWindowLength:
    """An event counts in its own second and the next `ceil(window_s) - 1` seconds."""

    @pytest.mark.parametrize("window_s", [0.2, 1.0])
    def test_a_one_second_window(self, clock: list[float], window_s: float) -> None:
        counts = SlidingCounts(2, window_s)
        counts.add(1)
        assert counts.totals == [0, 1]
        assert totals_after(counts, clock, 0.5) == [0, 1]  # still 1000 s
        assert totals_after(counts, clock, 0.5) == [0, 0]  # 1001 s: gone

    def test_a_fractional_window_rounds_up(self, clock: list[float]) -> None:
        counts = SlidingCounts(2, 2.5)
        counts.add(0)
        assert totals_after(counts, clock, 2.0) == [1, 0]  # 1002 s: third bucket
        assert totals_after(counts, clock, 1.0) == [0, 0]  # 1003 s

    def test_events_leave_in_the_order_they_came(self, clock: list[float]) -> None:
        counts = SlidingCounts(2, 3)
        counts.add(0)
        clock[0] += 1
        counts.add(1)
        counts.add(1)
        assert counts.totals == [1, 2]
        assert totals_after(counts, clock, 2) == [0, 2]
        assert totals_after(counts, clock, 1) == [0, 0]

    def test_a_quiet_spell_longer_than_the_window_forgets_everything(
        self, clock: list[float]
    ) -> None:
        """Seconds with no event leave buckets unvisited: they are swept all the same."""
        counts = SlidingCounts(2, 3)
        counts.add(0)  # second 1000, bucket 1
        clock[0] += 1
        counts.add(1)  # second 1001, bucket 2
        assert totals_after(counts, clock, 4) == [0, 0]  # second 1005, bucket 2 reused
        assert totals_after(counts, clock, 1) == [0, 0]  # and they stay gone
        counts.add(1)
        assert totals_after(counts, clock, 1) == [0, 1]

    def test_clear_forgets_everything(self, clock: list[float]) -> None:
        counts = SlidingCounts(2, 10)
        counts.add(0)
        counts.add(1)
        counts.clear()
        assert counts.totals == [0, 0]
        counts.add(1)
        assert totals_after(counts, clock, 0) == [0, 1]
