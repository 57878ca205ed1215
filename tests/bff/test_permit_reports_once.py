"""A breaker permit counts once: the first report (success, failure or release) is the one
that counts, whatever the caller does after. A `finally: permit.release()` after a reported
failure, or a second report by mistake, must not count the call twice: twice the failures
would open the breaker at half the failure rate a user was promised."""

from __future__ import annotations

import pytest

from bff.resilience.breaker import ServiceBreaker
from bff.settings import BreakerSettings


def closed(min_calls: int = 2) -> ServiceBreaker:
    return ServiceBreaker("svc", BreakerSettings(min_calls=min_calls, reset_timeout_s=60))


class TestFirstReportCounts:
    """After the first report, every later report on the same permit is ignored."""

    def test_a_failure_reported_twice_is_one_failure(self) -> None:
        b = closed()
        permit = b.admit()
        permit.failure()
        permit.failure()
        assert (b.state, b.counts) == ("closed", (0, 1))

    @pytest.mark.parametrize("later", ["success", "failure", "release"])
    def test_nothing_after_the_first(self, later: str) -> None:
        b = closed(min_calls=100)
        permit = b.admit()
        permit.success()
        getattr(permit, later)()
        getattr(permit, later)()
        assert b.counts == (1, 0)

    def test_a_released_permit_reports_nothing_later(self) -> None:
        b = closed()
        permit = b.admit()
        permit.release()
        permit.failure()
        assert b.counts == (0, 0)
