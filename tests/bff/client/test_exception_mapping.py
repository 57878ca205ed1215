"""What a failed attempt becomes: every library, decoder and header error is mapped to a
`DownstreamError` with the right reason (`bff.client.mapped_error`), our own errors and our
bugs pass through; and the failure's detail names its cause, the exception's class and,
when it has one, its message. That detail is what an operator reads in the log line and the
client span of a failed call ("reviews: unavailable (ConnectionResetError: peer reset)")."""

from __future__ import annotations

import aiohttp
import msgspec
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from bff.client import describe, mapped_error
from bff.errors import DownstreamError, DownstreamUnavailable


class Boom(Exception):
    """An exception no mapping knows: a bug of ours."""


def _raise(exc: Exception) -> None:
    """What an attempt's `except` does with `exc`: raise its mapped error, or `exc` itself."""
    error = mapped_error("svc", exc)
    if error is None:
        raise exc
    raise error


class TestMapExceptions:
    """Every library, decoder and header error becomes a DownstreamError with the right reason."""

    @pytest.mark.parametrize(
        ("exc", "reason"),
        [
            (TimeoutError(), "timeout"),
            (aiohttp.ServerTimeoutError(), "timeout"),
            (aiohttp.ClientPayloadError("cut"), "unavailable"),
            (aiohttp.ClientConnectionError(), "unavailable"),
            (aiohttp.ServerDisconnectedError(), "unavailable"),
            (ConnectionResetError(), "unavailable"),
            (OSError("no route"), "unavailable"),
            (aiohttp.ClientResponseError(None, (), message="bad header"), "bad_response"),  # type: ignore[arg-type]
            (msgspec.DecodeError("bad"), "bad_response"),
            (msgspec.ValidationError("shape"), "bad_response"),
            (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid"), "bad_response"),
            (RecursionError(), "bad_response"),
            (ValueError(), "bad_response"),
            (OverflowError(), "bad_response"),
            (TypeError(), "bad_response"),
            (KeyError("x"), "bad_response"),
        ],
    )
    def test_mapped(self, exc: Exception, reason: str) -> None:
        with pytest.raises(DownstreamError) as raised:
            _raise(exc)
        assert (raised.value.reason, raised.value.service) == (reason, "svc")

    def test_our_own_errors_and_bugs_pass_through(self) -> None:
        error = DownstreamUnavailable("svc", "status 503")
        with pytest.raises(DownstreamUnavailable) as raised:
            _raise(error)
        assert raised.value is error
        with pytest.raises(Boom):
            _raise(Boom())


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("a broken __str__")


class TestDescribe:
    """`describe(exc)`: "Class: message", or the class alone without a message."""

    def test_class_and_message(self) -> None:
        assert describe(ConnectionResetError("peer reset")) == "ConnectionResetError: peer reset"

    def test_class_alone_when_there_is_no_message(self) -> None:
        assert describe(ConnectionResetError()) == "ConnectionResetError"

    def test_a_broken_str_still_gives_the_class(self) -> None:
        assert describe(Unprintable()) == "Unprintable"

    def test_the_mapped_error_carries_it(self) -> None:
        error = mapped_error("reviews", ConnectionResetError("peer reset"))
        assert error is not None
        assert error.detail == "ConnectionResetError: peer reset"
        assert str(error) == "reviews: unavailable (ConnectionResetError: peer reset)"


_URL = URL("http://reviews/x")


_REQUEST = aiohttp.RequestInfo(_URL, "GET", CIMultiDictProxy(CIMultiDict()), _URL)


def _mapped(exc: Exception, timeout_s: float | None = None) -> DownstreamError:
    error = mapped_error("reviews", exc, timeout_s)
    assert error is not None
    return error


class TestEachMappingSaysWhy:
    """Every branch of the mapping keeps the service's name and says what went wrong."""

    @pytest.mark.parametrize(
        ("exc", "timeout_s", "said"),
        [
            (TimeoutError(), None, "reviews: timeout (no answer in time)"),
            (TimeoutError(), 0.3, "reviews: timeout (no answer in 300 ms)"),
            (TimeoutError(), 1.25, "reviews: timeout (no answer in 1250 ms)"),
            (
                aiohttp.ClientPayloadError("cut off"),
                None,
                "reviews: unavailable (ClientPayloadError: cut off)",
            ),
            (
                aiohttp.ClientResponseError(_REQUEST, (), status=400, message="header too long"),
                None,
                "reviews: bad_response (ClientResponseError: 400, message='header too long', "
                "url='http://reviews/x')",
            ),
            (OSError("no route"), None, "reviews: unavailable (OSError: no route)"),
            (ValueError("not JSON"), None, "reviews: bad_response (ValueError: not JSON)"),
        ],
    )
    def test_detail(self, exc: Exception, timeout_s: float | None, said: str) -> None:
        error = _mapped(exc, timeout_s)
        assert error.service == "reviews"
        assert str(error) == said


def test_a_bug_of_ours_is_not_mapped() -> None:
    """Anything else is a bug of ours: it propagates, for the fan-out to log and answer."""
    assert mapped_error("reviews", AttributeError("ours")) is None
