"""A downstream failure's detail names its cause: the exception's class and, when it has one,
its message. That detail is what an operator reads in the log line and the client span of a
failed call ("reviews: unavailable (ConnectionResetError: peer reset)")."""

from __future__ import annotations

import pytest

from bff.clients.mapping import describe, map_exceptions
from bff.errors import DownstreamError


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
        with pytest.raises(DownstreamError) as raised, map_exceptions("reviews"):
            raise ConnectionResetError("peer reset")
        assert raised.value.detail == "ConnectionResetError: peer reset"
        assert str(raised.value) == "reviews: unavailable (ConnectionResetError: peer reset)"
