"""A downstream's `Retry-After`: read, and honoured.

Read (`bff.client.retry_after`): delta-seconds or an HTTP date, to seconds in [0, 3600], or
None; it never raises. Leading zeros are allowed (RFC 9110: 1*DIGIT): "000000005" asks for
five seconds, not none, and reading it as 0 would retry sooner than asked. Honoured: a 503's
pause is waited for when it fits the deadline, and ends the retries when it does not."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp import web
from bff_support import MakeBff, stand_in
from pytest_aiohttp import AiohttpServer

from bff.client import retry_after


class TestRetryAfter:
    """`Retry-After` parses to seconds in [0, 3600], or None; it never raises."""

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            (None, None),
            ("", None),
            ("0", 0.0),
            ("5", 5.0),
            (" 7 ", 7.0),
            ("99999999999999", 3600.0),
            ("\u00b2", None),  # "²".isdigit() is True, int() refuses it
            ("\u0663", None),  # an Arabic-Indic three
            ("-1", None),
            ("1e9", None),
            ("1.5", None),
            ("Fri, 31 Dec 9999 23:59:59 GMT", 3600.0),
            ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
            ("Fri, 31 Dec 99999 23:59:59 GMT", None),
            ("soon, maybe", None),
            ("\x00\xff", None),
        ],
    )
    def test_parse(self, value: str | None, seconds: float | None) -> None:
        assert retry_after(value) == seconds

    def test_a_date_in_a_minute(self) -> None:
        soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
        assert 55 <= (retry_after(soon) or 0) <= 60


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


class TestRetryAfterIsHonoured:
    """A 503's `Retry-After` is honoured when it fits the deadline, and ends retries if not."""

    async def _flaky_reviews(self, aiohttp_server: AiohttpServer, retry_after: str) -> list[int]:
        calls: list[int] = []

        async def reviews(request: web.Request) -> web.Response:
            calls.append(1)
            if len(calls) == 1:
                return web.Response(status=503, headers={"Retry-After": retry_after})
            return web.json_response([])

        server = await stand_in(aiohttp_server, reviews, "/reviews/{id}")
        self.url = str(server.make_url("")).rstrip("/")
        return calls

    @pytest.mark.parametrize(("retry_after", "calls", "degraded"), [("0", 2, {}), ("5", 1, None)])
    async def test_retry_after(
        self,
        make_bff: MakeBff,
        aiohttp_server: AiohttpServer,
        retry_after: str,
        calls: int,
        degraded: Any,
    ) -> None:
        seen = await self._flaky_reviews(aiohttp_server, retry_after)
        bff = await make_bff(BFF_REVIEWS_URL=self.url)
        async with bff.get("/product-details/P001") as resp:
            body = await resp.json()
        assert len(seen) == calls
        assert body["degraded"] == (
            degraded if degraded is not None else {"reviews": "unavailable"}
        )
