"""One part through the cache to a real service over loopback: fresh copies, 304s,
stale-while-revalidate, stale-if-error, and one call per key for concurrent requests (the
requests the service could not tell apart, and only those).

Two kinds of service: the real mock services (their /__stats counts the calls), and
`Gate`, a small aiohttp service whose answers wait until the test opens the gate, echo who
asked and in which language, and carry whatever caching headers the test sets.
"""

from __future__ import annotations

import asyncio
import email.utils
import gc
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from bff_support import stand_in
from cache_support import Clock
from call_support import REVIEWS, call_context
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bff.cache.fetcher import NOT_AT_HAND, CachedFetcher
from bff.cache.store import PartCache, View
from bff.client import DownstreamClient
from bff.context import PartCall, RequestContext
from bff.errors import DownstreamError
from bff.parts import PARTS, Part
from bff.settings import DownstreamSettings, RetrySettings
from bff.settings.cache import CacheSettings
from bff.settings.downstream import HedgeSettings
from mock_services import ServiceKind, create_service_app
from mock_services.catalogue import product_for, reviews_for

PART = {p.name: p for p in PARTS}


class Asked:
    """What one request got for its part: the value (or the error) and its record."""

    def __init__(self, value: Any, call: PartCall, ctx: RequestContext) -> None:
        self.value = value
        self.call = call
        self.ctx = ctx

    @property
    def source(self) -> str:
        return self.call.source


class World:
    """A fetcher whose parts go to services at `urls`, with a cache whose clock we move."""

    def __init__(self, session: aiohttp.ClientSession, urls: Mapping[str, URL]) -> None:
        self.clock = Clock(time.time())  # services' Date headers are real time
        self.cache = PartCache(CacheSettings(), clock=self.clock)
        clients = {
            name: DownstreamClient(
                DownstreamSettings(
                    name=name,
                    urls=(url,),
                    retry=RetrySettings(max_attempts=1),
                    hedge=HedgeSettings(enabled=False),
                ),
                session,
                propagation_margin_s=0.005,
            )
            for name, url in urls.items()
        }
        self.fetcher = CachedFetcher(clients, self.cache, refresh_budget_s=1.0)

    async def ask(
        self,
        part: Part[Any] | str = "product",
        pid: str = "P001",
        *,
        budget_s: float = 1.0,
        **headers: str,
    ) -> Asked:
        """One request's part: at hand, or fetched; its error as its value."""
        if isinstance(part, str):
            part = PART[part]
        forwarded = {k.replace("_", "-"): v for k, v in headers.items()}
        ctx = call_context(budget_s, forwarded)
        view = View({k.lower(): v for k, v in forwarded.items()})
        value, lookup = self.fetcher.at_hand(part, pid, ctx, view)
        if value is NOT_AT_HAND:
            try:
                value = await self.fetcher.fetch(part, pid, ctx, view, lookup)
            except DownstreamError as exc:
                value = exc
        return Asked(value, ctx.calls[-1], ctx)


def plain(value: Any) -> Any:
    """A decoded part as the JSON it came from."""
    return msgspec.to_builtins(value)


class Mock:
    """A real mock service on loopback."""

    def __init__(self, url: URL, session: aiohttp.ClientSession) -> None:
        self.url = url
        self._session = session

    async def requests(self) -> int:
        async with self._session.get(self.url / "__stats") as resp:
            return int((await resp.json())["requests"])

    async def faults(self, **faults: Any) -> None:
        async with self._session.put(self.url / "__faults", json=faults) as resp:
            assert resp.status == 200


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def mocks(aiohttp_server: AiohttpServer, session: aiohttp.ClientSession) -> dict[str, Mock]:
    kinds: tuple[ServiceKind, ...] = ("product", "reviews", "inventory")
    urls = {
        k: (await aiohttp_server(create_service_app(k, latency_scale=0))).make_url("")
        for k in kinds
    }
    return {k: Mock(url, session) for k, url in urls.items()}


@pytest.fixture
def world(session: aiohttp.ClientSession, mocks: dict[str, Mock]) -> World:
    return World(session, {k: m.url for k, m in mocks.items()})


class TestFreshAndRevalidated:
    """A fresh copy makes no call; an expired one is revalidated and a 304 renews it."""

    async def test_second_request_makes_no_call(self, world: World, mocks: dict[str, Mock]) -> None:
        first = await world.ask()
        second = await world.ask()
        assert first.source == ""
        assert second.source == "cache"
        assert plain(second.value) == plain(first.value) == product_for("P001")
        assert await mocks["product"].requests() == 1

    async def test_304_renews_the_copy(self, gated: World, gate: tuple[Gate, URL]) -> None:
        service, _ = gate
        service.headers = {"Cache-Control": "max-age=2, stale-if-error=60"}  # as inventory
        service.etag = True
        await gated.ask(REVIEWS)
        gated.clock.advance(3)
        again = await gated.ask(REVIEWS)
        assert again.source == "revalidated"  # a live call of its own, the body from the copy
        assert who(again) == "anon"
        assert service.calls == 2  # the 304 is a request
        assert again.call.fresh_for == 2
        assert (await gated.ask(REVIEWS)).source == "cache"
        assert service.calls == 2

    async def test_stale_while_revalidate_serves_and_refreshes_once(
        self, gated: World, gate: tuple[Gate, URL]
    ) -> None:
        service, _ = gate
        service.headers = {"Cache-Control": "max-age=60, stale-while-revalidate=30"}
        service.etag = True
        await gated.ask(REVIEWS)
        gated.clock.advance(70)
        answers = await asyncio.gather(*(gated.ask(REVIEWS) for _ in range(20)))
        assert {a.source for a in answers} == {"cache"}
        assert {a.call.fresh_for for a in answers} == {0}  # stale: not fresh for a second
        await started(service, 2)  # the one background refresh
        await asyncio.sleep(0.02)
        assert service.calls == 2
        assert (await gated.ask(REVIEWS)).call.fresh_for > 50

    async def test_background_refresh_outlives_the_request(
        self, gated: World, gate: tuple[Gate, URL]
    ) -> None:
        """It has a deadline of its own: a request with 1 ms left still refreshes the copy."""
        service, _ = gate
        service.headers = {"Cache-Control": "max-age=60, stale-while-revalidate=30"}
        await gated.ask(REVIEWS)
        gated.clock.advance(70)
        service.latency_s = 0.03
        stale = await gated.ask(REVIEWS, budget_s=0.001)
        assert stale.source == "cache"
        await started(service, 2)
        for _ in range(100):
            if (await gated.ask(REVIEWS)).call.fresh_for > 50:
                break
            await asyncio.sleep(0.01)
        assert (await gated.ask(REVIEWS)).call.fresh_for > 50
        assert service.calls == 2


class TestStaleIfError:
    """A failed call within the copy's stale-if-error window is answered with the copy."""

    @pytest.mark.parametrize("kind", ["product", "reviews"])
    async def test_stale_copy(self, world: World, mocks: dict[str, Mock], kind: str) -> None:
        await world.ask(kind)
        await mocks[kind].faults(error_rate=1.0, latency_ms=0)
        world.clock.advance(200)
        served = await world.ask(kind)
        assert served.source == "stale"
        assert served.ctx.stale[kind] in (200, 201)
        expected = product_for("P001") if kind == "product" else reviews_for("P001")
        assert plain(served.value) == expected
        assert served.call.outcome == "ok"

    async def test_past_the_window_the_error_stands(
        self, world: World, mocks: dict[str, Mock]
    ) -> None:
        await world.ask()
        await mocks["product"].faults(error_rate=1.0, latency_ms=0)
        world.clock.advance(60 + 600 + 1)
        failed = await world.ask()
        assert isinstance(failed.value, DownstreamError)
        assert failed.value.reason == "unavailable"

    async def test_a_slow_service_past_the_deadline(
        self, world: World, mocks: dict[str, Mock]
    ) -> None:
        await world.ask()
        await mocks["product"].faults(latency_ms=2000)
        world.clock.advance(100)
        served = await world.ask(budget_s=0.05)
        assert served.source == "stale"

    async def test_not_found_is_an_answer_not_a_failure(
        self, world: World, mocks: dict[str, Mock]
    ) -> None:
        """A copy never stands in for a 404: the service answered."""
        await world.ask(pid="missing-1")
        asked = await world.ask(pid="missing-1")
        assert isinstance(asked.value, DownstreamError)
        assert asked.value.reason == "not_found"
        assert asked.source == ""


class TestBadCopies:
    """A stored body that no longer decodes is dropped and fetched again."""

    async def test_undecodable_copy(self, world: World, mocks: dict[str, Mock]) -> None:
        first = await world.ask()
        lookup = world.cache.lookup("product", "P001", View({}))
        assert lookup.entry is not None
        lookup.entry.body = b"{not json"
        lookup.entry.value = None  # as a copy read from Redis comes: bytes only
        again = await world.ask()
        assert again.source == ""  # fetched afresh, not revalidated
        assert again.value == first.value
        assert await mocks["product"].requests() == 2


class TestHerd:
    """500 concurrent requests for one cold id make exactly one call."""

    async def test_one_call(self, world: World, mocks: dict[str, Mock]) -> None:
        await mocks["reviews"].faults(latency_ms=50)
        answers = await asyncio.gather(*(world.ask("reviews", "P042") for _ in range(500)))
        assert await mocks["reviews"].requests() == 1
        sources = [a.source for a in answers]
        assert sources.count("") == 1
        assert sources.count("coalesced") == 499
        assert all(plain(a.value) == reviews_for("P042") for a in answers)


class Gate:
    """A reviews service that answers when the test opens its gate, saying in each review who
    asked (X-User-ID, else Authorization) and in which language, with the caching headers the
    test sets."""

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0
        self.open = asyncio.Event()
        self.open.set()
        self.headers: dict[str, str] = {}
        self.status = 200
        self.etag = False  # send an ETag of the body, and 304 to a matching If-None-Match
        self.latency_s = 0.0
        # `Date` on the test's clock (the cache's), so that moving it ages nothing else.
        self.clock: Callable[[], float] = time.time

    async def handler(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        try:
            await self.open.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        await asyncio.sleep(self.latency_s)
        who = request.headers.get("X-User-ID") or request.headers.get("Authorization", "anon")
        language = request.headers.get("Accept-Language", "en")
        review = {
            "productId": request.match_info["id"],
            "rating": 5,
            "comment": language,
            "author": who,
        }
        headers = {**self.headers, "Date": email.utils.formatdate(self.clock(), usegmt=True)}
        body = json.dumps([review]).encode()
        if self.etag:
            headers["ETag"] = tag = f'"{hashlib.sha1(body).hexdigest()}"'
            if request.headers.get("If-None-Match") == tag:
                return web.Response(status=304, headers=headers)
        return web.Response(
            body=body, status=self.status, headers=headers, content_type="application/json"
        )


@pytest.fixture
async def gate(aiohttp_server: AiohttpServer) -> tuple[Gate, URL]:
    service = Gate()
    # The handler is cancelled when we hang up, as a real server's work would stop.
    server = await stand_in(aiohttp_server, service.handler, "/reviews/{id}")
    return service, server.make_url("")


@pytest.fixture
def gated(session: aiohttp.ClientSession, gate: tuple[Gate, URL]) -> World:
    world = World(session, {"reviews": gate[1]})
    gate[0].clock = world.clock
    return world


def who(asked: Asked) -> str:
    assert not isinstance(asked.value, Exception), asked.value
    return str(asked.value[0].author)


def language(asked: Asked) -> str:
    assert not isinstance(asked.value, Exception), asked.value
    return str(asked.value[0].comment)


async def started(service: Gate, calls: int) -> None:
    """Until the service has seen `calls` requests (bounded)."""
    for _ in range(200):
        if service.calls >= calls:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{service.calls} calls, expected {calls}")


class TestOneCallPerKey:
    """Concurrent requests that the service could not tell apart share one call; leaving
    never hurts the others."""

    async def test_other_ids_are_separate(self, gated: World, gate: tuple[Gate, URL]) -> None:
        service, _ = gate
        await asyncio.gather(gated.ask(REVIEWS, "P1"), gated.ask(REVIEWS, "P2"))
        assert service.calls == 2

    async def test_a_follower_leaving_does_not_cancel_the_call(
        self, gated: World, gate: tuple[Gate, URL]
    ) -> None:
        service, _ = gate
        service.open.clear()
        patient = asyncio.create_task(gated.ask(REVIEWS))
        await started(service, 1)
        hasty = await gated.ask(REVIEWS, budget_s=0.02)
        assert isinstance(hasty.value, DownstreamError)
        assert hasty.value.reason == "timeout"
        service.open.set()
        assert who(await patient) == "anon"
        assert (service.calls, service.cancelled) == (1, 0)

    async def test_the_leader_leaving_hands_the_call_to_a_follower(
        self, gated: World, gate: tuple[Gate, URL]
    ) -> None:
        """The leader's call runs in the leader's task and ends with it; a follower still
        waiting makes the call itself."""
        service, _ = gate
        service.open.clear()
        leader = asyncio.create_task(gated.ask(REVIEWS))
        await started(service, 1)
        follower = asyncio.create_task(gated.ask(REVIEWS))
        await asyncio.sleep(0.01)
        leader.cancel()
        await started(service, 2)
        service.open.set()
        assert who(await follower) == "anon"
        assert service.calls == 2
        assert (await follower).source == ""  # its own call, after the hand-over

    async def test_an_error_reaches_every_follower(
        self, gated: World, gate: tuple[Gate, URL]
    ) -> None:
        service, _ = gate
        service.open.clear()
        service.status = 503
        waiters = [asyncio.create_task(gated.ask(REVIEWS)) for _ in range(3)]
        await started(service, 1)
        service.open.set()
        results = await asyncio.gather(*waiters)
        assert [getattr(r.value, "reason", None) for r in results] == ["unavailable"] * 3
        assert service.calls == 1

    async def test_an_error_nobody_waits_for_any_more_is_not_logged(
        self, gated: World, gate: tuple[Gate, URL]
    ) -> None:
        """A follower left (its deadline), then the leader's call failed: asyncio has nothing
        to complain about."""
        complaints: list[str] = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: complaints.append(context["message"]))
        service, _ = gate
        service.open.clear()
        service.status = 503
        leader = asyncio.create_task(gated.ask(REVIEWS))
        await started(service, 1)
        await gated.ask(REVIEWS, budget_s=0.01)
        service.open.set()
        await leader
        gc.collect()
        await asyncio.sleep(0)
        loop.set_exception_handler(None)
        assert complaints == []


class TestOnlyWhatTheCacheWouldServe:
    """A follower gets the leader's answer only when the cache would have served that answer
    to it: Vary and privacy are checked against the follower's own headers."""

    async def test_vary_authorization_keeps_users_apart(
        self, gated: World, gate: tuple[Gate, URL]
    ) -> None:
        """A key first stored with no Vary; then the service says `Vary: Authorization`:
        alice's and bob's concurrent requests each get their own answer."""
        service, _ = gate
        service.headers = {"Cache-Control": "public, max-age=1"}
        await gated.ask(REVIEWS, "P7", Authorization="Bearer alice")
        gated.clock.advance(2)
        service.headers = {"Cache-Control": "public, max-age=60", "Vary": "Authorization"}
        service.open.clear()
        asks = []
        for i in range(20):
            token = "Bearer alice" if i % 2 == 0 else "Bearer bob"
            asks.append(asyncio.create_task(gated.ask(REVIEWS, "P7", Authorization=token)))
        await asyncio.sleep(0.05)
        service.open.set()
        answers = await asyncio.gather(*asks)
        for i, asked in enumerate(answers):
            assert who(asked) == ("Bearer alice" if i % 2 == 0 else "Bearer bob")

    async def test_private_answers_stay_with_their_user(
        self, gated: World, gate: tuple[Gate, URL]
    ) -> None:
        service, _ = gate
        service.headers = {"Cache-Control": "public, max-age=1"}
        await gated.ask(REVIEWS, "P8")  # a shared shape
        gated.clock.advance(2)
        service.headers = {"Cache-Control": "private, max-age=60"}
        service.open.clear()
        alice = asyncio.create_task(gated.ask(REVIEWS, "P8", X_User_ID="alice"))
        bob = asyncio.create_task(gated.ask(REVIEWS, "P8", X_User_ID="bob"))
        await asyncio.sleep(0.05)
        service.open.set()
        assert (who(await alice), who(await bob)) == ("alice", "bob")

    async def test_an_answer_never_stored_is_shared_only_within_one_language(
        self, gated: World, gate: tuple[Gate, URL]
    ) -> None:
        """`no-store` with `Vary: Accept-Language`: after the uncacheable mark lapses, `fr`
        and `en` requests at once still each get their language."""
        service, _ = gate
        service.headers = {"Cache-Control": "no-store", "Vary": "Accept-Language"}
        await gated.ask(REVIEWS, "P9", Accept_Language="fr")
        gated.clock.advance(6)
        service.open.clear()
        asks = [
            asyncio.create_task(gated.ask(REVIEWS, "P9", Accept_Language=lang))
            for lang in ["fr", "en"] * 10
        ]
        await asyncio.sleep(0.05)
        service.open.set()
        answers = await asyncio.gather(*asks)
        assert [language(a) for a in answers] == ["fr", "en"] * 10

    async def test_a_shared_answer_is_shared(self, gated: World, gate: tuple[Gate, URL]) -> None:
        service, _ = gate
        service.headers = {"Cache-Control": "public, max-age=60"}
        await gated.ask(REVIEWS, "P10")
        gated.clock.advance(61)
        service.open.clear()
        alice = asyncio.create_task(gated.ask(REVIEWS, "P10", Authorization="Bearer alice"))
        bob = asyncio.create_task(gated.ask(REVIEWS, "P10", Authorization="Bearer bob"))
        await started(service, 2)
        await asyncio.sleep(0.02)
        service.open.set()
        answers = [await alice, await bob]
        assert service.calls == 2  # the first, and one for both of these
        assert sorted(a.source for a in answers) == ["", "coalesced"]


class TestBudgets:
    """A short client budget never cuts a shared call short for a longer one."""

    async def test_a_follower_outliving_the_leader_takes_over(
        self, gated: World, gate: tuple[Gate, URL]
    ) -> None:
        service, _ = gate
        service.open.clear()
        hasty = asyncio.create_task(gated.ask(REVIEWS, "P11", budget_s=0.03))
        await started(service, 1)
        patient = asyncio.create_task(gated.ask(REVIEWS, "P11", budget_s=1.0))
        failed = await hasty
        assert isinstance(failed.value, DownstreamError)
        assert failed.value.reason == "timeout"
        await started(service, 2)
        service.open.set()
        served = await patient
        assert who(served) == "anon"
        assert served.source == ""  # its own call
