"""Rate limiting per client: off unless a rate is set, burst, headers, isolation, refill,
one bucket per client however its address is spelled, Redis shared by instances and never
holding a request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import make_mocked_request
from bff_support import AdminFor, BffClient, MakeBff, Mocks, statuses, timed_get
from edge_support import SECRET, claims, hs256
from multidict import CIMultiDict
from redis_support import RedisServer, free_port

from bff.edge import ratelimit
from bff.edge.client_ip import ClientIp
from bff.errors import RateLimited
from bff.settings import RateLimitSettings, Settings, SettingsError

# 3 requests per client in any 1 s window.
TIGHT = {"BFF_RATE_LIMIT_RATE": "3", "BFF_RATE_LIMIT_BURST": "3"}


class TestBurst:
    """Past the burst a client gets 429 problems that say when to come back."""

    async def test_burst_beyond_the_limit_gets_429_with_headers(self, make_bff: MakeBff) -> None:
        client = await make_bff(**TIGHT)
        assert await statuses(client, [{}] * 3) == [200, 200, 200]
        async with client.get("/product-details/P001") as resp:
            assert resp.status == 429
            assert resp.content_type == "application/problem+json"
            body = await resp.json(content_type=None)
            assert body["type"] == "/problems/rate-limited"
            assert body["requestId"] == resp.headers["X-Request-ID"]
            assert resp.headers["RateLimit-Limit"] == "3"
            assert resp.headers["RateLimit-Remaining"] == "0"
            reset = int(resp.headers["RateLimit-Reset"])
            assert 1 <= reset <= 1
            assert resp.headers["Retry-After"] == resp.headers["RateLimit-Reset"]

    @pytest.mark.parametrize("strategy", ["moving-window", "fixed-window"])
    async def test_both_strategies_limit(self, make_bff: MakeBff, strategy: str) -> None:
        client = await make_bff({"edge.rate_limit.strategy": strategy}, **TIGHT)
        assert (await statuses(client, [{}] * 5)).count(429) == 2

    async def test_a_429_does_no_downstream_work(self, make_bff: MakeBff, mocks: Mocks) -> None:
        # Part cache off: each allowed request must call the product service itself.
        client = await make_bff(**TIGHT, BFF_CACHE="off")
        await statuses(client, [{}] * 6)
        assert await mocks.requests("product") == 3

    async def test_bucket_refills(self, make_bff: MakeBff) -> None:
        client = await make_bff(**TIGHT)
        assert await statuses(client, [{}] * 4) == [200, 200, 200, 429]
        await asyncio.sleep(1.1)
        assert await statuses(client, [{}] * 1) == [200]

    async def test_operator_endpoints_are_not_limited(
        self, make_bff: MakeBff, admin_for: AdminFor
    ) -> None:
        client = await make_bff(**TIGHT)
        await statuses(client, [{}] * 4)
        admin = await admin_for(client)
        for _ in range(5):
            async with admin.get("/readyz") as resp:
                assert resp.status == 200

    async def test_off_when_rate_is_zero(self, make_bff: MakeBff) -> None:
        client = await make_bff(BFF_RATE_LIMIT_RATE="0", BFF_RATE_LIMIT_BURST="1")
        assert await statuses(client, [{}] * 5) == [200] * 5


def client_ip(peer: str, forwarded_lines: list[str]) -> str:
    """The key for a request from `peer` with these `X-Forwarded-For` lines, our proxies being
    127.0.0.1 and 10.0.0.0/8."""
    resolve = ClientIp(
        Settings.from_env({"BFF_TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8"}).edge.trusted_proxies
    )
    headers = CIMultiDict(("X-Forwarded-For", line) for line in forwarded_lines)
    request = make_mocked_request("GET", "/", headers=headers)
    request._transport_peername = (peer, 1234)  # type: ignore[attr-defined]
    return resolve(request)


class TestClientKey:
    """The key is the verified subject, else the IP; X-Forwarded-For only from trusted proxies."""

    async def test_another_client_is_unaffected(self, make_bff: MakeBff) -> None:
        client = await make_bff(**TIGHT, BFF_TRUSTED_PROXIES="127.0.0.1/32")
        assert (await statuses(client, [{"X-Forwarded-For": "203.0.113.1"}] * 4))[-1] == 429
        assert await statuses(client, [{"X-Forwarded-For": "203.0.113.2"}] * 3) == [200] * 3

    async def test_forwarded_for_is_ignored_from_an_untrusted_peer(self, make_bff: MakeBff) -> None:
        client = await make_bff(**TIGHT)
        seen = []
        for i in range(4):
            seen += await statuses(client, [{"X-Forwarded-For": f"203.0.113.{i}"}])
        assert seen == [200, 200, 200, 429]

    async def test_each_subject_has_its_own_allowance(self, make_bff: MakeBff) -> None:
        client = await make_bff(**TIGHT, BFF_AUTH_JWT_SECRET=SECRET)
        alice = {"Authorization": f"Bearer {hs256(claims(sub='alice', iss=None, aud=None))}"}
        bob = {"Authorization": f"Bearer {hs256(claims(sub='bob', iss=None, aud=None))}"}
        assert (await statuses(client, [alice] * 4))[-1] == 429
        assert await statuses(client, [bob] * 3) == [200] * 3

    async def test_bad_tokens_spend_the_ip_allowance(self, make_bff: MakeBff) -> None:
        client = await make_bff(**TIGHT, BFF_AUTH_JWT_SECRET=SECRET)
        bad = {"Authorization": "Bearer not.a.jwt"}
        assert await statuses(client, [bad] * 4) == [401, 401, 401, 429]

    async def test_bad_tokens_spend_their_own_ips_allowance_only(self, make_bff: MakeBff) -> None:
        client = await make_bff(
            **TIGHT, BFF_AUTH_JWT_SECRET=SECRET, BFF_TRUSTED_PROXIES="127.0.0.1/32"
        )
        bad = {"Authorization": "Bearer not.a.jwt"}
        first = {**bad, "X-Forwarded-For": "203.0.113.1"}
        other = {**bad, "X-Forwarded-For": "203.0.113.2"}
        assert await statuses(client, [first] * 4) == [401, 401, 401, 429]
        assert await statuses(client, [other] * 3) == [401, 401, 401]

    @pytest.mark.parametrize(
        ("peer", "forwarded", "expected"),
        [
            ("127.0.0.1", None, "127.0.0.1"),
            ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
            # A client-written entry left of the real one is not believed.
            ("127.0.0.1", "198.51.100.1, 203.0.113.7", "203.0.113.7"),
            # Our own proxy chain (10.0.0.0/8) is skipped from the right.
            ("127.0.0.1", "203.0.113.7, 10.0.0.5", "203.0.113.7"),
            ("127.0.0.1", "garbage, 10.0.0.5", "10.0.0.5"),
            ("192.0.2.9", "203.0.113.7", "192.0.2.9"),  # peer not trusted: header ignored
        ],
    )
    def test_client_ip(self, peer: str, forwarded: str | None, expected: str) -> None:
        lines = [forwarded] if forwarded else []
        assert client_ip(peer, lines) == expected

    @pytest.mark.parametrize(
        ("lines", "expected"),
        [
            # A line of the client's own, then the one our proxy added: the header is every
            # line in order (RFC 9110), and the proxy's entry is the client.
            (["198.51.100.99", "203.0.113.7"], "203.0.113.7"),
            (["198.51.100.99", "203.0.113.7", "10.0.0.5"], "203.0.113.7"),
            (["198.51.100.99, 203.0.113.7", "10.0.0.5"], "203.0.113.7"),
            # A hop that is not an address stops the walk: nothing left of it can be told
            # apart from what the client wrote, so the last good hop is the key.
            (["198.51.100.99, not-an-ip, 10.0.0.5"], "10.0.0.5"),
            (["198.51.100.99", "not-an-ip", "10.0.0.5"], "10.0.0.5"),
            (["198.51.100.99,,10.0.0.5"], "10.0.0.5"),
            (["198.51.100.99, 203.0.113.7:80:80"], "127.0.0.1"),
            (["198.51.100.99 203.0.113.7"], "127.0.0.1"),
        ],
    )
    def test_several_lines_and_a_garbage_hop_cannot_choose_the_key(
        self, lines: list[str], expected: str
    ) -> None:
        assert client_ip("127.0.0.1", lines) == expected

    async def test_a_line_of_the_clients_own_does_not_pick_its_bucket(
        self, make_bff: MakeBff
    ) -> None:
        """Through the whole BFF: a new first line on every request, the same proxy line."""
        client = await make_bff(**TIGHT, BFF_TRUSTED_PROXIES="127.0.0.1/32")
        seen = []
        for i in range(4):
            headers = CIMultiDict(
                [("X-Forwarded-For", f"198.51.100.{i}"), ("X-Forwarded-For", "203.0.113.9")]
            )
            async with client.get("/product-details/P001", headers=headers) as resp:
                seen.append(resp.status)
        assert seen == [200, 200, 200, 429]


class TestSettings:
    @pytest.mark.parametrize(
        ("env", "name"),
        [
            ({"BFF_RATE_LIMIT_RATE": "-1"}, "BFF_RATE_LIMIT_RATE"),
            ({"BFF_RATE_LIMIT_BURST": "0"}, "BFF_RATE_LIMIT_BURST"),
            ({"BFF_RATE_LIMIT_RATE": "10", "BFF_RATE_LIMIT_BURST": "5"}, "BFF_RATE_LIMIT_BURST"),
            ({"BFF_REDIS_URL": "memcached://x:1"}, "BFF_REDIS_URL"),
            ({"BFF_RATE_LIMIT_STORAGE": "redis://x:1"}, "BFF_RATE_LIMIT_STORAGE"),
            ({"BFF_TRUSTED_PROXIES": "10.0.0.0/33"}, "BFF_TRUSTED_PROXIES"),
        ],
    )
    def test_invalid(self, env: dict[str, str], name: str) -> None:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env(env)

    def test_window(self) -> None:
        """The burst defaults to twice the rate: 200 requests per 2 s window at 100/s."""
        limit = Settings.from_env({"BFF_RATE_LIMIT_RATE": "100"}).edge.rate_limit
        assert (limit.rate, limit.burst, limit.window_s) == (100.0, 200, 2)


class TestMemoryStorage:
    """The in-process limiter keeps no threads: limits' expiry Timer is replaced by an inline
    trim on the event loop (a thread every 10 ms cost a quarter of the throughput, by py-spy).
    """

    @pytest.mark.parametrize("strategy", ["moving-window", "fixed-window"])
    async def test_hits_start_no_thread(self, strategy: str) -> None:
        limiter = ratelimit.RateLimiter(RateLimitSettings(rate=1000, burst=1000, strategy=strategy))
        await asyncio.sleep(0.05)  # the Timer MemoryStorage.__init__ started has been cancelled
        before = threading.active_count()
        for i in range(200):
            await limiter.check(f"ip:10.0.0.{i % 7}")
        assert threading.active_count() == before
        assert not any(isinstance(t, threading.Timer) for t in threading.enumerate())

    def test_the_trim_still_runs(self, monkeypatch: pytest.MonkeyPatch) -> None:
        store = ratelimit._LoopMemoryStorage()
        assert store.acquire_entry("k", limit=5, expiry=1)
        entry = store.events["k"][0]
        entry.atime = entry.expiry = time.time() - 10  # long expired
        monkeypatch.setattr(ratelimit, "_SWEEP_S", 0.0)
        store._next_sweep = 0.0
        assert store.acquire_entry("other", limit=5, expiry=1)  # runs the trim first
        assert store.events["k"] == []


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server on a loopback port, for this module only."""
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


class TestRedisStorage:
    """With Redis the allowance is shared by every instance; if Redis fails we fail open."""

    async def test_limit_is_shared_by_two_instances(
        self, make_bff: MakeBff, redis_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # This pins the sharing, not how fast a busy machine answers: a generous bound.
        monkeypatch.setattr(ratelimit, "REDIS_BOUND_S", 0.5)
        # A unique client per run: Redis outlives a single test.
        env = {**TIGHT, "BFF_REDIS_URL": redis_url, "BFF_TRUSTED_PROXIES": "127.0.0.1"}
        xff = {"X-Forwarded-For": f"198.51.100.{int(time.time() * 1000) % 250}"}
        first = await make_bff(**env)
        second = await make_bff(**env)
        assert await statuses(first, [xff] * 2) == [200, 200]
        assert await statuses(second, [xff] * 2) == [200, 429]
        async with second.get("/product-details/P001", headers=xff) as resp:
            assert resp.status == 429
            assert resp.headers["RateLimit-Limit"] == "3"
            assert 1 <= int(resp.headers["Retry-After"]) <= 1

    async def test_fails_open_when_redis_is_down(self, make_bff: MakeBff) -> None:
        client = await make_bff(**TIGHT, BFF_REDIS_URL=f"redis://127.0.0.1:{free_port()}")
        assert await statuses(client, [{}] * 5) == [200] * 5


DEADLINE_S = 0.5  # the BFF's default


async def limited_again(client: BffClient) -> None:
    """Until a new client's fourth request in a second is refused: the shared limit holds
    again (bounded: Redis is skipped for `PAUSE_S` after failures, then probed)."""
    async with asyncio.timeout(5 * ratelimit.PAUSE_S + 5):
        for n in range(10_000):
            xff = {"X-Forwarded-For": f"203.0.113.{n % 250}", "X-Request-ID": f"again-{n}"}
            if await statuses(client, [xff] * 4) == [200, 200, 200, 429]:
                return
            await asyncio.sleep(0.05)


async def answered_in_time(client: BffClient, count: int) -> list[int]:
    """`count` requests from one client, each bounded: a request Redis holds fails here
    (it used to wait for as long as Redis was stopped)."""
    got = []
    for i in range(count):
        async with asyncio.timeout(4 * DEADLINE_S):
            resp, _, took = await timed_get(
                client, f"/product-details/P{i}", headers={"X-Forwarded-For": "198.51.100.77"}
            )
        assert took < DEADLINE_S, f"request {i} took {took:.3f} s"
        got.append(resp.status)
    return got


class TestRedisNeverHoldsARequest:
    """Shared limits on a real redis-server that is stopped (SIGSTOP: the kernel accepts its
    connections, nothing answers) or killed: every answer is a 200 within the deadline
    (fail open), and limiting resumes once Redis is back."""

    async def test_a_stopped_redis(self, make_bff: MakeBff, redis_server: RedisServer) -> None:
        client = await make_bff(
            **TIGHT, BFF_REDIS_URL=redis_server.url, BFF_TRUSTED_PROXIES="127.0.0.1"
        )
        await limited_again(client)
        with redis_server.stopped():
            assert await answered_in_time(client, 20) == [200] * 20
        await limited_again(client)

    async def test_a_killed_redis(self, make_bff: MakeBff, redis_server: RedisServer) -> None:
        client = await make_bff(
            **TIGHT, BFF_REDIS_URL=redis_server.url, BFF_TRUSTED_PROXIES="127.0.0.1"
        )
        await limited_again(client)
        redis_server.kill()
        assert await answered_in_time(client, 20) == [200] * 20
        redis_server.start()  # the same port
        await limited_again(client)


@pytest.fixture
async def shared(redis_server: RedisServer) -> AsyncIterator[ratelimit.RateLimiter]:
    """A limiter of 3 per second on the test's redis-server, connected (one decision made)."""
    limiter = ratelimit.RateLimiter(RateLimitSettings(rate=3, burst=3, storage=redis_server.url))
    try:
        assert await allowed(limiter, "warm", 1) == 1
        yield limiter
    finally:
        await limiter.close()


async def allowed(limiter: ratelimit.RateLimiter, key: str, count: int) -> int:
    """How many of `count` checks for `key` pass."""
    passed = 0
    for _ in range(count):
        try:
            await limiter.check(key)
        except RateLimited:
            continue
        passed += 1
    return passed


# What these tests count is failures, not how long one may take: a live Redis must never be
# late here. On a machine whose cores are both busy, a reply now and then takes more than a
# few ms, and one such reply would be counted as a failure.
_COUNTING_BOUND_S = 0.1


class TestRedisBounds:
    """How long a decision may wait on Redis, and what makes the limiter skip it."""

    async def test_a_decision_waits_no_longer_than_its_bound(
        self, shared: ratelimit.RateLimiter, redis_server: RedisServer
    ) -> None:
        """The quickest of five decisions against a stopped Redis shows which bound is in
        force: about its 25 ms, where the client's own 250 ms timeouts would be the bound
        without it (a decision between two, Redis answering, keeps the limiter from
        pausing, which would make a decision free)."""
        took = []
        for i in range(5):
            assert await allowed(shared, f"between-{i}", 1) == 1
            with redis_server.stopped():
                started = time.monotonic()
                assert await allowed(shared, f"held-{i}", 1) == 1  # fail open
                took.append(time.monotonic() - started)
        assert ratelimit.REDIS_BOUND_S == 0.025
        assert min(took) < 0.1, took

    async def test_a_short_budget_bounds_the_wait_and_is_not_held_against_redis(
        self,
        shared: ratelimit.RateLimiter,
        redis_server: RedisServer,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        real_bound = ratelimit.REDIS_BOUND_S
        monkeypatch.setattr(ratelimit, "REDIS_BOUND_S", _COUNTING_BOUND_S)
        with redis_server.stopped():
            started = time.monotonic()
            for i in range(10):
                await shared.check(f"budget-{i}", budget_s=0.0)  # nothing left: no wait
            took = time.monotonic() - started
        assert took < 5 * real_bound  # 10 waits of even the real bound would be 10 times
        # Not Redis' fault: it is not skipped, the limit holds at once.
        assert await allowed(shared, "after-budget", 4) == 3

    async def test_failures_in_a_row_skip_redis_for_a_pause(
        self,
        shared: ratelimit.RateLimiter,
        redis_server: RedisServer,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(ratelimit, "PAUSE_S", 0.3)
        monkeypatch.setattr(ratelimit, "REDIS_BOUND_S", _COUNTING_BOUND_S)
        with redis_server.stopped():
            for i in range(ratelimit.FAIL_MAX):
                await shared.check(f"held-{i}")
        assert await allowed(shared, "paused", 4) == 4  # skipped: every request passes
        await asyncio.sleep(0.3)  # the pause is time, nothing to wait on but the clock
        assert await allowed(shared, "probed", 4) == 3

    async def test_one_failure_among_successes_does_not_pause(
        self,
        shared: ratelimit.RateLimiter,
        redis_server: RedisServer,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(ratelimit, "REDIS_BOUND_S", _COUNTING_BOUND_S)
        with redis_server.stopped():
            for i in range(ratelimit.FAIL_MAX - 1):
                await shared.check(f"held-{i}")
        assert await allowed(shared, "between", 1) == 1  # a success resets the count
        with redis_server.stopped():
            await shared.check("held-again")
        assert await allowed(shared, "still-limited", 4) == 3


PROXY = {"BFF_TRUSTED_PROXIES": "127.0.0.1/32"}


class TestRateLimitDefault:
    """Off unless BFF_RATE_LIMIT_RATE is set: behind a balancer without trusted proxies every
    user would otherwise share the balancer's one bucket."""

    def test_off_without_a_rate(self) -> None:
        assert not Settings.from_env({}).edge.rate_limit.enabled

    async def test_a_burst_alone_does_not_turn_it_on(self, make_bff: MakeBff) -> None:
        client = await make_bff(BFF_RATE_LIMIT_BURST="1")
        assert await statuses(client, [{}] * 4) == [200] * 4

    async def test_a_rate_turns_it_on_with_twice_the_rate_as_burst(self, make_bff: MakeBff) -> None:
        client = await make_bff(BFF_RATE_LIMIT_RATE="1")
        assert await statuses(client, [{}] * 3) == [200, 200, 429]


class TestSharedState:
    def test_one_redis_url_is_the_rate_limits_storage(self) -> None:
        settings = Settings.from_env({"BFF_REDIS_URL": "redis://cache:6379/1"})
        assert settings.redis_url == "redis://cache:6379/1"
        assert settings.edge.rate_limit.storage == "redis://cache:6379/1"
        assert Settings.from_env({}).edge.rate_limit.storage == "memory://"

    def test_the_old_storage_variable_is_refused_with_its_replacement(self) -> None:
        with pytest.raises(SettingsError, match="BFF_REDIS_URL"):
            Settings.from_env({"BFF_RATE_LIMIT_STORAGE": "redis://cache:6379"})


class TestCanonicalClientKey:
    """One client, one bucket: every spelling of an address (ports, IPv6 forms, IPv4-mapped)
    and every address of one IPv6 /64 share the limit."""

    @pytest.mark.parametrize(
        "spellings",
        [
            ["2001:db8::1", "2001:0DB8:0:0::1", "[2001:db8::1]:443", "2001:db8::ffff"],
            ["198.51.100.7", "198.51.100.7:5555", "::ffff:198.51.100.7", "[::ffff:c633:6407]:1"],
        ],
        ids=["ipv6-one-64", "ipv4-ports-mapped"],
    )
    async def test_spellings_share_one_bucket(
        self, make_bff: MakeBff, spellings: list[str]
    ) -> None:
        client = await make_bff(**TIGHT, **PROXY)
        got = await statuses(client, [{"X-Forwarded-For": s} for s in spellings])
        assert got == [200, 200, 200, 429]

    async def test_another_64_is_another_client(self, make_bff: MakeBff) -> None:
        client = await make_bff(**TIGHT, **PROXY)
        first = [{"X-Forwarded-For": "2001:db8:0:1::1"}] * 4
        assert await statuses(client, first) == [200, 200, 200, 429]
        assert await statuses(client, [{"X-Forwarded-For": "2001:db8:0:2::1"}]) == [200]

    async def test_a_port_on_a_hop_does_not_fall_back_to_the_proxy(self, make_bff: MakeBff) -> None:
        """`ip:port` is the client, not garbage: two such clients don't share the proxy's
        bucket."""
        client = await make_bff(**TIGHT, **PROXY)
        one = [{"X-Forwarded-For": "203.0.113.1:1000"}] * 3
        two = [{"X-Forwarded-For": "203.0.113.2:1000"}] * 3
        assert await statuses(client, one + two) == [200] * 6
