"""Retry budget (Envoy's idea): retries may add at most `ratio` of first attempts, plus a floor.

Counted over a sliding window of one-second buckets, so a dead service sees about
`1 + ratio` times the calls instead of `max_attempts` times, while a healthy service with the
odd transient error gets every retry it needs.
"""

from __future__ import annotations

from collections.abc import Callable

from bff.resilience.window import SlidingCounts

_FIRSTS, _RETRIES = 0, 1


class RetryBudget:
    __slots__ = ("_counts", "_exhausted", "_min", "_ratio")

    def __init__(
        self,
        ratio: float,
        min_retries: int,
        window_s: float,
        *,
        on_exhausted: Callable[[], None] | None = None,
    ) -> None:
        """`on_exhausted`: called for each spend the budget refuses (the retry budget's
        metric; a hedge budget has none, its refusals are not refused retries)."""
        self._ratio = ratio
        self._min = min_retries
        self._counts = SlidingCounts(2, window_s)
        self._exhausted = on_exhausted

    def record_first_attempt(self) -> None:
        self._counts.add(_FIRSTS)

    def try_spend(self) -> bool:
        """Take one retry from the budget; False when the window's allowance is used up."""
        counts = self._counts
        counts.current()
        firsts, retries = counts.totals
        if retries >= firsts * self._ratio + self._min:
            if self._exhausted is not None:
                self._exhausted()
            return False
        counts.add(_RETRIES)
        return True

    @property
    def counts(self) -> tuple[int, int]:
        """(first attempts, retries) inside the current window."""
        self._counts.current()
        firsts, retries = self._counts.totals
        return firsts, retries
