"""The project's one exception tree; library exceptions never travel past the client edge.

    BffError                      anything the BFF answers with a problem+json
    ├── InvalidRequest            400: bad id or header; nothing was sent downstream
    ├── EdgeRejection             turned away at the door (bff.edge), before any work
    │   ├── Unauthorized          401: auth is on and the bearer token is missing or invalid
    │   ├── CorsRejected          403: a preflight from an origin or for a method not allowed
    │   ├── BodyTooLarge          413: a GET or HEAD that carries a body
    │   ├── RateLimited           429: this client spent its allowance
    │   └── ServiceOverloaded     503: the worker cannot keep up (bff.edge.admission), is at
    │                             its in-flight ceiling, or the deadline went by queued
    └── DownstreamError           one downstream call failed; `.reason` is the contract's word
        ├── DownstreamTimeout     timeout       (no answer in time, or the service's own 504)
        ├── CircuitOpen           circuit_open  (breaker open: no call was made)
        ├── DownstreamUnavailable unavailable   (refused/reset, 5xx after retries, odd status)
        ├── BadResponse           bad_response  (not JSON, wrong shape, too large)
        ├── Overloaded            overloaded    (our own in-flight cap for that service is full)
        └── DownstreamNotFound    not_found     (404: the product does not exist)

Clients raise only `DownstreamError`s; `bff.problems` turns any `BffError` into a response, so
the HTTP status of each case is decided in one place.
"""

from __future__ import annotations


class BffError(Exception):
    """Base of every error the BFF answers with a problem document."""


class InvalidRequest(BffError):
    """The client sent something we refuse before doing any work."""

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class DownstreamError(BffError):
    """A call to one downstream service did not give us a usable answer."""

    reason: str = "unavailable"

    def __init__(self, service: str, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{service}: {self.reason} ({detail})")
        self.service = service
        self.detail = detail
        self.retry_after = retry_after


class DownstreamTimeout(DownstreamError):
    reason = "timeout"


class CircuitOpen(DownstreamError):
    reason = "circuit_open"


class DownstreamUnavailable(DownstreamError):
    reason = "unavailable"


class BadResponse(DownstreamError):
    reason = "bad_response"


class Overloaded(DownstreamError):
    reason = "overloaded"


class DownstreamNotFound(DownstreamError):
    reason = "not_found"


class EdgeRejection(BffError):
    """The edge refused the request before any work; `headers` go on the problem response."""

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class Unauthorized(EdgeRejection):
    pass


class CorsRejected(EdgeRejection):
    pass


class BodyTooLarge(EdgeRejection):
    pass


class RateLimited(EdgeRejection):
    pass


class ServiceOverloaded(EdgeRejection):
    """Always with `Retry-After` (1 s unless told): a shed request should come back, later."""

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers or {"Retry-After": "1"})
