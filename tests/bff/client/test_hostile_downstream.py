"""Hostile downstreams: whatever a service sends, the answer keeps the contract, on time.

A raw TCP server (hostile_support.py) plays one of the three services; the id names the case.
It also answers for the other two, always validly and at once, so that what is timed is the
hostile part alone. For each case: the part's outcome is the one in
EXPECTED, the product's failures are 502/504 (never 500), the answer goes out by the deadline,
and no case leaves a breaker stuck (each is run again as a half-open breaker's probe).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bff_support import KINDS, BffClient, MakeBff, server_timing, timed_get
from hostile_support import CASES, GOOD, HostileServer

from bff.keys import CLIENTS
from bff.resilience.breaker import ServiceBreaker

DEADLINE_MS = 500  # the default; shorter made the cases flaky on a loaded machine
SENT_BY_MS = DEADLINE_MS + 20  # Server-Timing's total: the BFF's own clock
WALL_MARGIN_S = 0.25  # the client's clock on a loaded, shared 2-core machine
RESET_S = 0.05

# The hostile part's outcome per case: None = a complete answer. Bodies we cannot use are one
# id's problem (bad_response); answers that broke off, odd statuses and 5xx are the service's
# (unavailable); nothing in time is a timeout.
EXPECTED: dict[str, str | None] = {
    GOOD: None,
    "invalid_utf8": "bad_response",
    "deep_array": "bad_response",
    "huge_int": "bad_response",
    "float_int": "bad_response",
    "string_int": "bad_response",
    "null_int": "bad_response",
    "nan": "bad_response",
    "infinity": "bad_response",
    "duplicate_keys": None,  # the last key wins, as in every JSON parser we know; it is ours
    "id_mismatch": "bad_response",
    "null_body": "bad_response",
    "empty_200": "bad_response",
    "truncated_chunked": "unavailable",
    "length_too_long": "unavailable",
    "length_too_short": "bad_response",  # the declared 5 bytes are read: not JSON
    "unknown_encoding": None,  # aiohttp passes an unknown coding through; the JSON is fine
    "broken_gzip": "unavailable",
    "gzip_ok": None,
    "status_1xx": "unavailable",
    "status_302": "unavailable",  # redirects are never followed
    "status_418": "unavailable",
    "status_999": "unavailable",
    "retry_after_superscript": "unavailable",
    "retry_after_negative": "unavailable",
    "retry_after_exponent": "unavailable",
    "retry_after_year_9999": "unavailable",
    "retry_after_garbage": "unavailable",
    "drip": "timeout",
    "never_ends": "timeout",
    "headers_64kb": "bad_response",
}
PRODUCT_STATUS = {None: 200, "bad_response": 502, "unavailable": 502, "timeout": 504}


def test_the_corpus_is_covered() -> None:
    assert set(EXPECTED) == set(CASES)


@pytest.fixture(params=KINDS)
async def hostile(request: pytest.FixtureRequest) -> AsyncIterator[HostileServer]:
    """The hostile server as each of the three services in turn."""
    server = HostileServer(request.param)
    await server.start()
    yield server
    await server.stop()


async def bff_on(make_bff: MakeBff, hostile: HostileServer, **fields: Any) -> BffClient:
    """A BFF on the hostile server (all three services), with a short deadline and reset;
    `fields` are the hostile service's (`breaker__min_calls=3` -> `reviews.breaker.min_calls`)."""
    service = {"breaker__reset_timeout_s": RESET_S, **fields}
    return await make_bff(
        {f"{hostile.kind}.{k.replace('__', '.')}": v for k, v in service.items()},
        BFF_DEADLINE_MS=DEADLINE_MS,
        BFF_RATE_LIMIT_RATE=0,
        **{f"BFF_{kind.upper()}_URL": hostile.url for kind in KINDS},
    )


def breaker_of(bff: BffClient, kind: str) -> ServiceBreaker:
    breaker: ServiceBreaker = bff.server.app[CLIENTS][kind].breaker
    return breaker


async def outcome(bff: BffClient, kind: str, case: str) -> tuple[Any, list[str]]:
    """(what the hostile part got, broken promises): a reason, None for complete, or a status."""
    resp, body, wall = await timed_get(bff, f"/product-details/{case}")
    broken = []
    total_ms = float(server_timing(resp.headers["Server-Timing"])["total"]["dur"])
    if total_ms > SENT_BY_MS:
        broken.append(f"{case}: Server-Timing total {total_ms} ms")
    if wall > (SENT_BY_MS / 1000) + WALL_MARGIN_S:
        broken.append(f"{case}: answered after {wall * 1000:.0f} ms")
    if kind == "product":
        return resp.status, broken
    if resp.status != 200:
        broken.append(f"{case}: status {resp.status} for an optional part")
        return resp.status, broken
    return body["degraded"].get(kind), broken


def expected(kind: str, case: str) -> Any:
    return PRODUCT_STATUS[EXPECTED[case]] if kind == "product" else EXPECTED[case]


class TestHostileCorpus:
    """Every case gets its expected outcome, by the deadline, and never a 500."""

    async def test_every_case_keeps_the_contract_by_the_deadline(
        self, make_bff: MakeBff, hostile: HostileServer
    ) -> None:
        """Each case meets the service itself (a breaker that never opens), one at a time."""
        kind = hostile.kind
        bff = await bff_on(make_bff, hostile, breaker__min_calls=1_000_000)
        got, broken = {}, []
        for case in CASES:
            got[case], promises = await outcome(bff, kind, case)
            broken += promises
        assert got == {case: expected(kind, case) for case in CASES}
        assert broken == []

    async def test_every_case_as_the_probe_of_a_half_open_breaker(
        self, make_bff: MakeBff, hostile: HostileServer
    ) -> None:
        """Whatever the probe meets, the breaker is not stuck: after the reset timeout the next
        call is a probe again, and a healthy answer closes the breaker."""
        kind = hostile.kind
        fields = {"breaker__min_calls": 1, "breaker__failure_rate": 0.01, "retry__max_attempts": 1}
        bff = await bff_on(make_bff, hostile, **fields)
        breaker = breaker_of(bff, kind)
        got, broken = {}, []
        for case in CASES:
            await outcome(bff, kind, "status_999")  # any failure opens it
            assert breaker.state == "open"
            await asyncio.sleep(RESET_S * 1.2)
            got[case], promises = await outcome(bff, kind, case)  # the probe
            broken += promises
            await asyncio.sleep(RESET_S * 1.2)
            healthy, promises = await outcome(bff, kind, GOOD)
            broken += promises
            assert (healthy, breaker.state) == (expected(kind, GOOD), "closed"), case
        assert got == {case: expected(kind, case) for case in CASES}
        assert broken == []


class TestHealing:
    """An open breaker lets nothing through, and closes at the first probe after the reset
    timeout once the service is healthy again."""

    async def test_the_breaker_closes_within_reset_timeout_plus_one_probe(
        self, make_bff: MakeBff, hostile: HostileServer
    ) -> None:
        kind, reset_s = hostile.kind, 1.0
        bff = await bff_on(
            make_bff, hostile, breaker__min_calls=3, breaker__reset_timeout_s=reset_s
        )
        breaker = breaker_of(bff, kind)
        for _ in range(3):
            await outcome(bff, kind, "truncated_chunked")
        assert breaker.state == "open"
        calls = sum(hostile.seen.values())
        await outcome(bff, kind, GOOD)  # open: not called
        assert sum(hostile.seen.values()) == calls
        hostile.heal()
        await asyncio.sleep(reset_s * 1.1)
        assert await outcome(bff, kind, "truncated_chunked") == (expected(kind, GOOD), [])
        assert breaker.state == "closed"


class TestPoisonId:
    """Errors that concern one id never take the service away from the others."""

    @pytest.mark.parametrize("case", ["id_mismatch", "deep_array"])
    async def test_fifty_requests_for_a_poison_id_then_a_good_id_is_complete(
        self, make_bff: MakeBff, hostile: HostileServer, case: str
    ) -> None:
        kind = hostile.kind
        bff = await bff_on(make_bff, hostile)  # the default breaker
        for _ in range(50):
            assert (await outcome(bff, kind, case))[0] == expected(kind, case)
        assert await outcome(bff, kind, GOOD) == (expected(kind, GOOD), [])
        assert breaker_of(bff, kind).state == "closed"
        assert breaker_of(bff, kind).counts[1] == 0
