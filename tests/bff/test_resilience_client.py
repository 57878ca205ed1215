"""The client's pieces on their own: exception mapping, Retry-After, the rate breaker, the
seam to aiohttp-retry, and what the fan-out does with an exception nobody mapped."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import msgspec
import pytest
from bff_support import BffClient, MakeBff

from bff import client as client_module
from bff.client import mapped_error, retry_after
from bff.errors import CircuitOpen, DownstreamError, DownstreamUnavailable
from bff.keys import CLIENTS
from bff.resilience.breaker import ServiceBreaker
from bff.settings import BreakerSettings


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


def breaker(**settings: Any) -> ServiceBreaker:
    return ServiceBreaker("svc", BreakerSettings(**settings))


class TestRateBreaker:
    """The breaker opens on the failure rate over a sliding window, after a minimum of calls."""

    def test_half_the_calls_failing_keeps_it_closed(self) -> None:
        b = breaker()  # the defaults: 80 % of at least 20 calls in 10 s
        for i in range(1000):
            permit = b.admit()
            permit.failure() if i % 2 else permit.success()
        assert b.state == "closed"

    def test_opens_at_the_rate_once_the_minimum_is_in(self) -> None:
        b = breaker(min_calls=10, failure_rate=0.8)
        for _ in range(9):
            b.admit().failure()
        assert b.state == "closed"  # 9 calls: below the minimum
        b.admit().failure()
        assert b.state == "open"
        with pytest.raises(CircuitOpen):
            b.admit()

    def test_successes_dilute_the_rate(self) -> None:
        b = breaker(min_calls=10, failure_rate=0.8)
        for _ in range(3):
            b.admit().success()
        for _ in range(11):
            b.admit().failure()
        assert b.state == "closed"  # 11 of 14 = 79 %
        b.admit().failure()
        assert b.state == "open"  # 12 of 15 = 80 %

    def test_old_outcomes_leave_the_window(self, monkeypatch: pytest.MonkeyPatch) -> None:
        now = [1000.0]
        monkeypatch.setattr(time, "monotonic", lambda: now[0])
        b = breaker(min_calls=4, failure_rate=0.5, window_s=5)
        for _ in range(3):
            b.admit().failure()
        now[0] += 5
        b.admit().failure()
        assert (b.state, b.counts) == ("closed", (0, 1))

    def test_the_probe_decides_and_a_released_probe_frees_the_slot(self) -> None:
        b = breaker(min_calls=1, reset_timeout_s=0.01)
        b.admit().failure()
        time.sleep(0.02)
        probe = b.admit()
        probe.release()  # neutral (a bad body, a cancellation): still half-open, not stuck
        assert b.state == "half-open"
        b.admit().failure()
        assert b.state == "open"
        time.sleep(0.02)
        b.admit().success()
        assert (b.state, b.counts) == ("closed", (0, 0))  # a closed spell starts afresh


class TestUnexpectedExceptions:
    """An exception nobody mapped (a bug of ours) is logged once with its traceback; an
    optional part is then `bad_response`, the product a 502: never a 500."""

    @pytest.fixture
    def broken(self, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        broken_services: list[str] = []
        real = client_module.DownstreamClient._read_capped

        async def read(self: client_module.DownstreamClient, resp: aiohttp.ClientResponse) -> bytes:
            if self.name in broken_services:
                raise Boom("a bug")
            return await real(self, resp)

        monkeypatch.setattr(client_module.DownstreamClient, "_read_capped", read)
        return broken_services

    async def _get(self, bff: BffClient) -> tuple[int, Any]:
        async with bff.get("/product-details/P001") as resp:
            return resp.status, await resp.json()

    async def test_an_optional_part(
        self, make_bff: MakeBff, broken: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        bff = await make_bff()
        broken.append("reviews")
        status, body = await self._get(bff)
        assert (status, body["degraded"]) == (200, {"reviews": "bad_response"})
        out = capsys.readouterr().out
        assert out.count("part_failed_unexpectedly") == 1
        line = next(line for line in out.splitlines() if "part_failed_unexpectedly" in line)
        assert "part=reviews" in line
        assert "error=Boom" in line
        assert "Traceback" in out
        assert "Boom: a bug" in out
        # The breaker permit was released: the breaker heard nothing and is not stuck.
        assert bff.server.app[CLIENTS]["reviews"].breaker.counts == (0, 0)

    async def test_the_product(self, make_bff: MakeBff, broken: list[str]) -> None:
        bff = await make_bff()
        broken.append("product")
        status, body = await self._get(bff)
        assert (status, body["detail"]) == (502, "product: bad_response")
