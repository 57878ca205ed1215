"""What one attempt's outcome means, case by case: the value or error the caller gets, whether
it is retried, and what the breaker and outlier ejection hear ("health").

A wrong verdict is visible to users: a timeout not retried fails a part that a retry would
have saved; a poison id counted as a failure opens the breaker for every other id; a 503
counted as a success keeps sending traffic to a dead instance.
"""

from __future__ import annotations

from typing import Any, cast

import aiohttp
import pytest
from call_support import INVENTORY, PRODUCT, REVIEWS

from bff.clients.classify import Verdict, classify_answer, classify_error
from bff.clients.transport import Answer
from bff.errors import (
    BadResponse,
    DownstreamError,
    DownstreamNotFound,
    DownstreamTimeout,
    DownstreamUnavailable,
)

_BODY = b'{"id":"%s","name":"Lamp","description":"A lamp","price":1999}'
_RESPONSE = cast(aiohttp.ClientResponse, object())  # never read by the classifier


def answer(status: int, body: bytes = b"", retry_after: float | None = None) -> Answer:
    return Answer(status, body, retry_after, _RESPONSE)


def verdict(status: int, *, timeouts_count: bool = True, **kw: Any) -> Verdict:
    return classify_answer(
        answer(status, **kw), PRODUCT, "P001", "product", timeouts_count=timeouts_count
    )


class TestNoUsableAnswer:
    """An attempt that ended without an answer we can use (the error comes from the mapping)."""

    def test_a_bad_body_is_neutral_final_and_keeps_its_error(self) -> None:
        error = BadResponse("svc", "too large")
        for counts in (True, False):
            assert classify_error(error, timeouts_count=counts) == Verdict("neutral", error=error)

    def test_a_timeout_is_retried_and_counts_only_when_the_attempt_had_its_full_time(
        self,
    ) -> None:
        error = DownstreamTimeout("svc", "no answer in 300 ms")
        counted = classify_error(error, timeouts_count=True)
        assert counted == Verdict("failure", error=error, retryable=True)
        assert counted.retryable is True
        uncounted = classify_error(error, timeouts_count=False)
        assert uncounted == Verdict("neutral", error=error, retryable=True)
        assert uncounted.retryable is True

    def test_a_refused_or_reset_connection_is_a_retried_failure(self) -> None:
        error = DownstreamUnavailable("svc", "ConnectionResetError")
        for counts in (True, False):
            got = classify_error(error, timeouts_count=counts)
            assert got == Verdict("failure", error=error, retryable=True)
            assert got.retryable is True


class TestAnswers:
    """An HTTP answer, status by status."""

    def test_a_200_with_the_right_id_is_the_value(self) -> None:
        body = _BODY % b"P001"
        got = verdict(200, body=body)
        assert got.health == "success"
        assert got.error is None
        assert got.retryable is False
        assert got.value.id == "P001"

    def test_a_200_about_another_id_is_a_neutral_bad_response(self) -> None:
        body = _BODY % b"P002"
        got = verdict(200, body=body)
        assert (got.health, got.retryable, got.value) == ("neutral", False, None)
        assert isinstance(got.error, BadResponse)
        assert got.error.service == "product"

    def test_a_404_without_a_value_is_not_found_and_a_live_service(self) -> None:
        got = verdict(404)
        assert (got.health, got.retryable, got.value) == ("success", False, None)
        assert isinstance(got.error, DownstreamNotFound)
        assert (got.error.service, got.error.detail) == ("product", "404")

    def test_a_404_that_stands_for_a_value(self) -> None:
        got = classify_answer(answer(404), REVIEWS, "P001", "reviews", timeouts_count=True)
        assert got == Verdict("success", [])

    def test_a_404_for_inventory_is_unavailable(self) -> None:
        got = classify_answer(answer(404), INVENTORY, "P001", "inventory", timeouts_count=True)
        assert isinstance(got.error, DownstreamUnavailable)
        assert got.health == "success"

    @pytest.mark.parametrize("status", [201, 204, 301, 400, 401, 429, 499])
    def test_other_answers_below_500_are_final_from_a_live_service(self, status: int) -> None:
        got = verdict(status, retry_after=5.0)
        assert (got.health, got.retryable, got.value) == ("success", False, None)
        assert type(got.error) is DownstreamUnavailable
        assert (got.error.service, got.error.detail) == ("product", f"status {status}")

    @pytest.mark.parametrize("status", [502, 503])
    def test_502_and_503_are_retried_failures_that_keep_retry_after(self, status: int) -> None:
        got = verdict(status, retry_after=2.0, timeouts_count=False)
        assert (got.health, got.retryable) == ("failure", True)
        assert type(got.error) is DownstreamUnavailable
        assert (got.error.service, got.error.detail) == ("product", f"status {status}")
        assert got.error.retry_after == 2.0

    @pytest.mark.parametrize("status", [500, 501, 505, 599, 600])
    def test_other_5xx_are_final_failures(self, status: int) -> None:
        got = verdict(status)
        assert (got.health, got.retryable) == ("failure", False)
        assert type(got.error) is DownstreamUnavailable
        assert got.error.detail == f"status {status}"

    def test_a_504_is_a_retried_timeout_blamed_only_with_the_full_time(self) -> None:
        got = verdict(504, retry_after=1.0)
        assert (got.health, got.retryable) == ("failure", True)
        assert type(got.error) is DownstreamTimeout
        error: DownstreamError = got.error
        assert (error.service, error.detail, error.retry_after) == (
            "product",
            "service answered 504",
            1.0,
        )
        assert verdict(504, timeouts_count=False).health == "neutral"
