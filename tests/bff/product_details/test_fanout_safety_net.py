"""The fan-out's safety nets, for bugs of ours that no real client has.

Every call is meant to end by the deadline on its own (the client's timeouts do that); a part
whose call does not is cut at the deadline plus a 5 ms grace and cancelled: an optional part
is then degraded as `timeout`, and the product fails the answer as a timeout. Every failure
is meant to be a `DownstreamError`; any other exception is logged once, with the part and
its type, and stands as that part's `bad_response`. Driven here by a fetch that misbehaves.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgspec
import pytest
from bff_support import BffClient, MakeBff

from bff import client as client_module
from bff import product_details
from bff.cache.fetcher import NOT_AT_HAND
from bff.context import RequestContext
from bff.edge.admission import Admission
from bff.errors import (
    BadResponse,
    DownstreamTimeout,
)
from bff.keys import CLIENTS
from bff.models import ReviewSummary
from bff.parts import PARTS, Part
from mock_services.catalogue import inventory_for, product_for, reviews_for

ID = "P001"


BUDGET_S = 0.05


BODIES = {"product": product_for(ID), "reviews": reviews_for(ID), "inventory": inventory_for(ID)}


class Boom(Exception):
    """An exception no mapping knows: a bug of ours."""


class Fetch:
    """Answers each part at once, except `hanging`, which never ends unless cancelled, and
    `broken`, which raises `Boom`."""

    def __init__(self, hanging: str = "", broken: str = "") -> None:
        self.hanging, self.broken = hanging, broken
        self.cancelled: list[str] = []

    def in_flight(self, key: str) -> bool:
        return False

    async def fetch(self, part: Part[Any], *_: Any) -> Any:
        if part.name == self.broken:
            raise Boom("a bug")
        if part.name == self.hanging:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled.append(part.name)
                raise
        return part.decode(msgspec.json.encode(BODIES[part.name]), ID)


def context() -> RequestContext:
    ctx = RequestContext("safety-net")
    ctx.start(BUDGET_S)
    return ctx


async def aggregate(fetch: Fetch, ctx: RequestContext) -> dict[str, Any]:
    """The fan-out and the merge of `GET /product-details/{id}` for parts none of which is at
    hand, with `fetch` standing for the cached fetcher."""
    details = product_details.ProductDetails(
        PARTS, fetch, Admission(deadline_s=BUDGET_S, max_in_flight=10), deadline_s=BUDGET_S
    )  # type: ignore[arg-type]
    values: list[Any] = [NOT_AT_HAND] * len(PARTS)
    missing = [(i, part, None) for i, part in enumerate(PARTS)]
    await details._fetch_missing(ctx, ID, None, values, missing)
    return product_details._merge(PARTS, values, ctx)


async def test_an_optional_part_past_the_deadline_is_cut_and_degraded_as_a_timeout() -> None:
    fetch, ctx = Fetch("reviews"), context()
    body = await asyncio.wait_for(aggregate(fetch, ctx), timeout=5)
    # Answered by the safety timer: not before the deadline, and long before the call's hour.
    assert asyncio.get_running_loop().time() >= ctx.deadline_at
    assert body["degraded"] == {"reviews": "timeout"}
    assert body["error"] == "reviews: timeout"
    assert (body["reviews"], body["reviewSummary"]) == ([], ReviewSummary(0, None))
    assert body["product"].id == ID
    await asyncio.sleep(0)  # the cancellation is delivered on the next turn
    assert fetch.cancelled == ["reviews"]


async def test_the_product_past_the_deadline_fails_the_answer_as_a_timeout() -> None:
    fetch = Fetch("product")
    with pytest.raises(DownstreamTimeout) as failed:
        await asyncio.wait_for(aggregate(fetch, context()), timeout=5)
    assert str(failed.value) == "product: timeout (deadline reached)"
    await asyncio.sleep(0)
    assert fetch.cancelled == ["product"]


async def test_an_optional_part_that_raises_a_bug_is_its_bad_response_logged_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = await aggregate(Fetch(broken="inventory"), context())
    assert body["degraded"] == {"inventory": "bad_response"}
    assert body["inventory"] is None
    (line,) = [x for x in capsys.readouterr().out.splitlines() if "part_failed_unexpectedly" in x]
    assert "part=inventory" in line
    assert "error=Boom" in line


async def test_the_product_raising_a_bug_fails_the_answer_as_a_bad_response() -> None:
    with pytest.raises(BadResponse) as failed:
        await aggregate(Fetch(broken="product"), context())
    assert str(failed.value) == "product: bad_response (unexpected Boom)"


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
