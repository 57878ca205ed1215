"""What one attempt's answer (or failure) means: a value or an error, and what it says about
the service's health.

    200, body decodes, ids match   value                       success
    200, raw                       Fetched (status, headers, body)  success (body checked)
    304 to our If-None-Match       Fetched                     success: a live service
    304, no If-None-Match sent     BadResponse                 neutral: not an answer we asked
    200, body unusable             BadResponse                 neutral: one id's problem
    404                            the endpoint's 404 value    success: a live service
                                   or its not-found error
    other 1xx-4xx                  DownstreamUnavailable       success: a live service
    502, 503                       DownstreamUnavailable       failure, retryable
    504                            DownstreamTimeout           failure*, retryable
    other 5xx and beyond           DownstreamUnavailable       failure
    no answer in time              DownstreamTimeout           failure*, retryable
    refused, reset, cut off        DownstreamUnavailable       failure, retryable
    an answer that is not HTTP     BadResponse                 neutral

* only when the attempt had its full per-attempt timeout and our own loop was not running
  late: a timeout caused by a client's short budget, or by this worker being starved, says
nothing about the service, or any client could open our breakers with a tiny budget.

"Neutral" outcomes reach neither the breaker nor outlier ejection: errors that concern one id
(a poison body, an id mismatch, a 404) must not take a service away from every other id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bff.clients.mapping import map_exceptions
from bff.clients.transport import Answer, Endpoint, Fetched
from bff.errors import BadResponse, DownstreamError, DownstreamTimeout, DownstreamUnavailable

Health = Literal["success", "failure", "neutral"]

_RETRYABLE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class Verdict:
    health: Health
    value: Any = None
    error: DownstreamError | None = None
    retryable: bool = False


def classify_answer(
    answer: Answer,
    endpoint: Endpoint,
    product_id: str,
    service: str,
    *,
    timeouts_count: bool,
    raw: bool = False,
    etag_sent: bool = False,
) -> Verdict:
    status = answer.status
    if status == 304 and not etag_sent:
        return Verdict("neutral", error=BadResponse(service, "304 to a request without a tag"))
    if status == 304:  # to our If-None-Match: a live service; the part cache renews its copy
        return Verdict("success", Fetched(status, answer.response.headers, answer.body))
    if status == 200:
        try:
            with map_exceptions(service):
                value = endpoint.decode(answer.body, product_id)
        except BadResponse as exc:
            return Verdict("neutral", error=exc)
        if raw:  # the part cache stores the body as it came, with its headers
            value = Fetched(status, answer.response.headers, answer.body, value)
        return Verdict("success", value)
    if status == 404:
        if endpoint.on_404 is not None:
            return Verdict("success", endpoint.on_404())
        return Verdict("success", error=endpoint.not_found(service, "404"))
    if status < 500:
        return Verdict("success", error=DownstreamUnavailable(service, f"status {status}"))
    retryable = status in _RETRYABLE_STATUSES
    if status == 504:
        error: DownstreamError = DownstreamTimeout(
            service, "service answered 504", retry_after=answer.retry_after
        )
        return Verdict(_blame(timeouts_count), error=error, retryable=True)
    error = DownstreamUnavailable(service, f"status {status}", retry_after=answer.retry_after)
    return Verdict("failure", error=error, retryable=retryable)


def classify_error(error: DownstreamError, *, timeouts_count: bool) -> Verdict:
    """An attempt that got no usable answer (`error` comes from `map_exceptions`)."""
    if isinstance(error, BadResponse):
        return Verdict("neutral", error=error)
    if isinstance(error, DownstreamTimeout):
        return Verdict(_blame(timeouts_count), error=error, retryable=True)
    return Verdict("failure", error=error, retryable=True)


def _blame(timeouts_count: bool) -> Health:
    return "failure" if timeouts_count else "neutral"
