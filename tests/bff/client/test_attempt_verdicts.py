"""What one attempt's outcome means, case by case: the value or error the caller gets, whether
it is retried, and what the breaker and outlier ejection hear ("health": the breaker's
(successes, failures)).

A wrong verdict is visible to users: a timeout not retried fails a part that a retry would
have saved; a poison id counted as a failure opens the breaker for every other id; a 503
counted as a success keeps sending traffic to a dead instance.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from bff_support import stand_in
from call_support import INVENTORY, PRODUCT, REVIEWS, client_of, fetch, one_shot
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bff.client import Reply
from bff.errors import (
    BadResponse,
    DownstreamNotFound,
    DownstreamTimeout,
    DownstreamUnavailable,
)
from bff.parts import Part
from bff.settings import RetrySettings

_BODY = b'{"id":"%s","name":"Lamp","description":"A lamp","price":1999}'


class Service:
    """Answers every GET as the test says (and hangs for `hang_s` first)."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        self.headers: dict[str, str] = {}
        self.hang_s = 0.0

    async def handler(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.hang_s)
        return web.Response(status=self.status, body=self.body, headers=self.headers)


@pytest.fixture
async def service(aiohttp_server: AiohttpServer) -> tuple[Service, URL]:
    svc = Service()
    server = await stand_in(aiohttp_server, svc.handler, "/{tail:.*}")
    return svc, server.make_url("")


class Verdict:
    def __init__(self, reply: Reply, attempts: int, health: tuple[int, int]) -> None:
        self.reply = reply
        self.error = reply.error
        self.retried = attempts > 1
        self.health = health


async def verdict(
    service: tuple[Service, URL],
    status: int,
    body: bytes = b"",
    *,
    part: Part[Any] = PRODUCT,
    budget_s: float = 5.0,
    attempt_timeout_s: float = 0.3,
    **headers: str,
) -> Verdict:
    """One call with room for one retry: what it returned, whether it retried, and what the
    breaker heard of its attempts."""
    svc, url = service
    svc.status, svc.body = status, body
    svc.headers = {k.replace("_", "-"): v for k, v in headers.items()}
    settings = dataclasses.replace(
        one_shot(part.name, url, attempt_timeout_s=attempt_timeout_s),
        retry=RetrySettings(max_attempts=2, backoff_base_s=0.001, backoff_max_s=0.001),
    )
    async with aiohttp.ClientSession() as session:
        client = client_of(settings, session)
        reply, call = await fetch(client, part, budget_s=budget_s)
    return Verdict(reply, call.attempts, client.breaker.counts)


class TestNoUsableAnswer:
    """An attempt that ended without an answer we can use."""

    async def test_a_bad_body_is_neutral_final_and_keeps_its_error(
        self, service: tuple[Service, URL]
    ) -> None:
        got = await verdict(service, 200, b"{not json")
        assert isinstance(got.error, BadResponse)
        assert (got.retried, got.health) == (False, (0, 0))

    async def test_a_timeout_with_the_full_time_is_a_retried_failure(
        self, service: tuple[Service, URL]
    ) -> None:
        service[0].hang_s = 1.0
        got = await verdict(service, 200, _BODY % b"P001", attempt_timeout_s=0.05)
        assert isinstance(got.error, DownstreamTimeout)
        assert str(got.error) == "product: timeout (no answer in 50 ms)"
        assert (got.retried, got.health) == (True, (0, 2))

    async def test_a_timeout_the_deadline_cut_short_is_neutral(
        self, service: tuple[Service, URL]
    ) -> None:
        """The client's short budget, not the service: the breaker hears nothing."""
        service[0].hang_s = 1.0
        got = await verdict(service, 200, _BODY % b"P001", budget_s=0.05)
        assert isinstance(got.error, DownstreamTimeout)
        assert got.health == (0, 0)

    async def test_a_refused_connection_is_a_retried_failure(self) -> None:
        from redis_support import free_port

        url = URL(f"http://127.0.0.1:{free_port()}")
        settings = dataclasses.replace(
            one_shot("product", url),
            retry=RetrySettings(max_attempts=2, backoff_base_s=0.001, backoff_max_s=0.001),
        )
        async with aiohttp.ClientSession() as session:
            client = client_of(settings, session)
            reply, call = await fetch(client, PRODUCT)
        assert isinstance(reply.error, DownstreamUnavailable)
        assert (call.attempts, client.breaker.counts) == (2, (0, 2))


class TestAnswers:
    """An HTTP answer, status by status."""

    async def test_a_200_with_the_right_id_is_the_value(self, service: tuple[Service, URL]) -> None:
        got = await verdict(service, 200, _BODY % b"P001")
        assert got.error is None
        assert got.reply.value.id == "P001"
        assert got.reply.body == _BODY % b"P001"
        assert (got.retried, got.health) == (False, (1, 0))

    async def test_a_200_about_another_id_is_a_neutral_bad_response(
        self, service: tuple[Service, URL]
    ) -> None:
        got = await verdict(service, 200, _BODY % b"P002")
        assert isinstance(got.error, BadResponse)
        assert got.error.service == "product"
        assert (got.retried, got.health, got.reply.value) == (False, (0, 0), None)

    async def test_a_404_without_a_value_is_not_found_and_a_live_service(
        self, service: tuple[Service, URL]
    ) -> None:
        got = await verdict(service, 404)
        assert isinstance(got.error, DownstreamNotFound)
        assert (got.error.service, got.error.detail) == ("product", "404")
        assert (got.retried, got.health) == (False, (1, 0))

    async def test_a_404_that_stands_for_a_value(self, service: tuple[Service, URL]) -> None:
        got = await verdict(service, 404, part=REVIEWS)
        assert got.error is None
        assert (got.reply.status, got.reply.value) == (404, [])
        assert got.health == (1, 0)

    async def test_a_404_for_inventory_is_unavailable(self, service: tuple[Service, URL]) -> None:
        got = await verdict(service, 404, part=INVENTORY)
        assert isinstance(got.error, DownstreamUnavailable)
        assert got.health == (1, 0)

    async def test_a_304_we_did_not_ask_for_is_a_neutral_bad_response(
        self, service: tuple[Service, URL]
    ) -> None:
        got = await verdict(service, 304)
        assert isinstance(got.error, BadResponse)
        assert (got.retried, got.health) == (False, (0, 0))

    @pytest.mark.parametrize("status", [201, 204, 301, 400, 401, 429, 499])
    async def test_other_answers_below_500_are_final_from_a_live_service(
        self, service: tuple[Service, URL], status: int
    ) -> None:
        got = await verdict(service, status, Retry_After="5")
        assert type(got.error) is DownstreamUnavailable
        assert (got.error.service, got.error.detail) == ("product", f"status {status}")
        assert (got.retried, got.health) == (False, (1, 0))

    @pytest.mark.parametrize("status", [502, 503])
    async def test_502_and_503_are_retried_failures_that_keep_retry_after(
        self, service: tuple[Service, URL], status: int
    ) -> None:
        got = await verdict(service, status, Retry_After="0")
        assert type(got.error) is DownstreamUnavailable
        assert (got.error.service, got.error.detail) == ("product", f"status {status}")
        assert got.error.retry_after == 0.0
        assert (got.retried, got.health) == (True, (0, 2))

    @pytest.mark.parametrize("status", [500, 501, 505, 599])
    async def test_other_5xx_are_final_failures(
        self, service: tuple[Service, URL], status: int
    ) -> None:
        got = await verdict(service, status)
        assert type(got.error) is DownstreamUnavailable
        assert got.error.detail == f"status {status}"
        assert (got.retried, got.health) == (False, (0, 1))

    async def test_a_504_is_a_retried_timeout_blamed_only_with_the_full_time(
        self, service: tuple[Service, URL]
    ) -> None:
        got = await verdict(service, 504, Retry_After="0")
        assert type(got.error) is DownstreamTimeout
        assert (got.error.service, got.error.detail, got.error.retry_after) == (
            "product",
            "service answered 504",
            0.0,
        )
        assert (got.retried, got.health) == (True, (0, 2))
        # With less than the per-attempt timeout left (the client's budget): neutral.
        short = await verdict(service, 504, budget_s=0.2)
        assert short.health == (0, 0)
