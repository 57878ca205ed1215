"""A downstream's `Retry-After` in delta-seconds may carry leading zeros (RFC 9110: 1*DIGIT):
"000000005" asks for five seconds, not none. The wait decides when we retry that service, so
reading it as 0 would retry sooner than asked."""

from __future__ import annotations

import pytest

from bff.client import retry_after


class TestLeadingZeros:
    """Zeros in front change nothing; the one-hour cap still holds after them."""

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            ("05", 5.0),
            ("000000005", 5.0),
            ("0000000000000120", 120.0),
            ("00000000", 0.0),
            ("000000000000000000000", 0.0),
            ("0000000003601", 3600.0),
            ("00000000099999999999", 3600.0),
        ],
    )
    def test_parse(self, value: str, seconds: float) -> None:
        assert retry_after(value) == seconds
