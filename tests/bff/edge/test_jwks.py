"""JWT keys from the identity provider's JWKS URL.

A local aiohttp server plays the provider: it serves a JWKS of RSA keys generated here and
counts its fetches; tokens are signed RS256 with those keys. The set is fetched at start,
again when a token names an unknown `kid` (rotation), never per request, and always in a
thread: the event loop keeps serving while a fetch is in progress.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jwt
import pytest
from aiohttp import web
from bff_support import BffClient, MakeBff, stand_in, statuses
from cryptography.hazmat.primitives.asymmetric import rsa
from edge_support import claims, rsa_key
from pytest_aiohttp import AiohttpServer

from bff.settings import Settings, SettingsError


class Provider:
    """A JWKS endpoint whose key set, and whether it answers at once, the test controls."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {"k1": rsa_key()}
        self.fetches = 0
        self.hold: asyncio.Event | None = None
        self.url = ""

    def jwk(self, kid: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key())
        )
        return {**data, "kid": kid, "use": "sig", "alg": "RS256"}

    async def handle(self, _request: web.Request) -> web.Response:
        self.fetches += 1
        if self.hold is not None:
            await self.hold.wait()
        return web.json_response({"keys": [self.jwk(kid) for kid in self.keys]})

    def token(self, kid: str | None, **overrides: Any) -> str:
        key = self.keys[kid or "k1"]
        headers = {} if kid is None else {"kid": kid}
        return jwt.encode(claims(iss=None, aud=None, **overrides), key, "RS256", headers=headers)


@pytest.fixture
async def provider(aiohttp_server: AiohttpServer) -> Provider:
    p = Provider()
    server = await stand_in(aiohttp_server, p.handle, "/.well-known/jwks.json")
    p.url = str(server.make_url("/.well-known/jwks.json"))
    return p


async def status(client: BffClient, token: str) -> int:
    (answered,) = await statuses(client, [{"Authorization": f"Bearer {token}"}])
    return answered


class TestJwks:
    async def test_fetched_once_at_start_not_per_request(
        self, make_bff: MakeBff, provider: Provider
    ) -> None:
        client = await make_bff(BFF_AUTH_JWT_JWKS_URL=provider.url)
        assert provider.fetches == 1
        for _ in range(5):
            assert await status(client, provider.token("k1")) == 200
        assert provider.fetches == 1

    async def test_a_rotated_key_is_fetched_on_its_first_token(
        self, make_bff: MakeBff, provider: Provider
    ) -> None:
        client = await make_bff(BFF_AUTH_JWT_JWKS_URL=provider.url)
        provider.keys["k2"] = rsa_key()
        assert await status(client, provider.token("k2")) == 200
        assert provider.fetches == 2
        assert await status(client, provider.token("k2")) == 200
        assert provider.fetches == 2

    async def test_made_up_kids_cost_one_fetch_per_cooldown(
        self, make_bff: MakeBff, provider: Provider
    ) -> None:
        client = await make_bff(BFF_AUTH_JWT_JWKS_URL=provider.url)
        stranger = rsa_key()
        forged = [
            jwt.encode(claims(iss=None, aud=None), stranger, "RS256", headers={"kid": f"x{i}"})
            for i in range(10)
        ]
        results = await asyncio.gather(*(status(client, t) for t in forged))
        assert results == [401] * 10
        assert provider.fetches == 2  # start + one refresh shared by all of them

    async def test_the_loop_serves_while_a_fetch_waits(
        self, make_bff: MakeBff, provider: Provider
    ) -> None:
        client = await make_bff(BFF_AUTH_JWT_JWKS_URL=provider.url)
        provider.hold = asyncio.Event()
        provider.keys["k2"] = rsa_key()
        waiting = asyncio.create_task(status(client, provider.token("k2")))
        for _ in range(200):  # bounded: until the refresh reached the provider
            if provider.fetches == 2:
                break
            await asyncio.sleep(0.01)
        assert provider.fetches == 2
        assert await status(client, provider.token("k1")) == 200
        assert not waiting.done()
        provider.hold.set()
        assert await waiting == 200

    async def test_signatures_and_algorithms_are_still_checked(
        self, make_bff: MakeBff, provider: Provider
    ) -> None:
        client = await make_bff(BFF_AUTH_JWT_JWKS_URL=provider.url)
        wrong_key = jwt.encode(
            claims(iss=None, aud=None), rsa_key(), "RS256", headers={"kid": "k1"}
        )
        assert await status(client, wrong_key) == 401
        hs = jwt.encode(claims(iss=None, aud=None), "x" * 32, "HS256", headers={"kid": "k1"})
        assert await status(client, hs) == 401

    async def test_no_kid_is_accepted_only_with_a_single_key(
        self, make_bff: MakeBff, provider: Provider
    ) -> None:
        client = await make_bff(BFF_AUTH_JWT_JWKS_URL=provider.url)
        assert await status(client, provider.token(None)) == 200

    async def test_an_unreachable_provider_means_401_not_a_failed_start(
        self, make_bff: MakeBff, unused_tcp_port: int
    ) -> None:
        client = await make_bff(BFF_AUTH_JWT_JWKS_URL=f"http://127.0.0.1:{unused_tcp_port}/j")
        token = jwt.encode(claims(iss=None, aud=None), rsa_key(), "RS256", headers={"kid": "a"})
        assert await status(client, token) == 401


class TestSettings:
    def test_jwks_means_rs256_by_default(self) -> None:
        auth = Settings.from_env({"BFF_AUTH_JWT_JWKS_URL": "https://idp.example/jwks"}).edge.auth
        assert (auth.enabled, auth.algorithm, auth.jwks_url) == (
            True,
            "RS256",
            "https://idp.example/jwks",
        )

    @pytest.mark.parametrize(
        "env",
        [
            {"BFF_AUTH_JWT_JWKS_URL": "ftp://idp/jwks"},
            {"BFF_AUTH_JWT_JWKS_URL": "https://idp/jwks", "BFF_AUTH_JWT_ALGORITHM": "HS256"},
            {"BFF_AUTH_JWT_JWKS_URL": "https://idp/jwks", "BFF_AUTH_JWT_SECRET": "x" * 32},
        ],
        ids=["not-http", "hs256", "two-sources"],
    )
    def test_invalid(self, env: dict[str, str]) -> None:
        with pytest.raises(SettingsError):
            Settings.from_env(env)
