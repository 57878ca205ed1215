"""JWT auth at the BFF (keys, tokens, the subject forwarded as `X-User-ID`) and the header
allow-list toward the services."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from bff_support import BffClient, MakeBff, Mocks, statuses
from edge_support import (
    AUDIENCE,
    ISSUER,
    SECRET,
    claims,
    ec_key,
    hmac_with,
    hs256,
    public_pem,
    rsa_key,
    tamper_payload,
    tamper_signature,
    unsigned,
)

from bff.settings import Settings, SettingsError

RSA = rsa_key()


EC = ec_key()


OTHER_RSA = rsa_key()


HS_ENV = {
    "BFF_AUTH_JWT_SECRET": SECRET,
    "BFF_AUTH_JWT_ISSUER": ISSUER,
    "BFF_AUTH_JWT_AUDIENCE": AUDIENCE,
}


RS_ENV = {**HS_ENV, "BFF_AUTH_JWT_SECRET": "", "BFF_AUTH_JWT_PUBLIC_KEY": public_pem(RSA)}


ES_ENV = {**HS_ENV, "BFF_AUTH_JWT_SECRET": "", "BFF_AUTH_JWT_PUBLIC_KEY": public_pem(EC)}


async def get(client: BffClient, token: str | None, **headers: str) -> tuple[int, Any, Any]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with client.get("/product-details/P001", headers=headers) as resp:
        return resp.status, resp.headers, await resp.json(content_type=None)


class TestAuthOff:
    """The default: no key configured, no token needed, and no client X-User-ID gets through."""

    async def test_no_token_needed(self, bff: BffClient) -> None:
        status, _, _ = await get(bff, None)
        assert status == 200

    async def test_client_headers_outside_the_allow_list_never_reach_the_services(
        self, bff: BffClient, mocks: Mocks
    ) -> None:
        status, _, _ = await get(
            bff,
            None,
            Authorization="Bearer opaque",
            **{
                "Accept-Language": "de-CH",
                "X-User-ID": "admin",
                "Cookie": "session=abc",
                "X-Forwarded-For": "10.9.9.9",
                "X-Internal-Debug": "1",
            },
        )
        assert status == 200
        seen = await mocks.last_headers("product")
        assert seen["authorization"] == "Bearer opaque"
        assert seen["accept-language"] == "de-CH"
        for name in ("x-user-id", "cookie", "x-forwarded-for", "x-internal-debug"):
            assert name not in seen, f"{name} was forwarded"


class TestValidTokens:
    """A verified token passes; its subject goes downstream as X-User-ID, whatever the client
    says."""

    @pytest.mark.parametrize(
        ("env", "sign"),
        [
            (HS_ENV, lambda c: hs256(c)),
            (RS_ENV, lambda c: jwt.encode(c, RSA, algorithm="RS256")),
            (ES_ENV, lambda c: jwt.encode(c, EC, algorithm="ES256")),
        ],
        ids=["HS256", "RS256", "ES256"],
    )
    async def test_verified_subject_is_forwarded(
        self, make_bff: MakeBff, mocks: Mocks, env: dict[str, str], sign: Any
    ) -> None:
        client = await make_bff(**env)
        token = sign(claims(sub="alice"))
        status, _, _ = await get(client, token, **{"X-User-ID": "mallory"})
        assert status == 200
        seen = await mocks.last_headers("product")
        assert seen["x-user-id"] == "alice"
        assert seen["authorization"] == f"Bearer {token}"

    async def test_expired_within_leeway_is_accepted(self, make_bff: MakeBff) -> None:
        client = await make_bff(**HS_ENV)  # 30 s of leeway
        status, _, _ = await get(client, hs256(claims(exp=int(time.time()) - 5)))
        assert status == 200

    async def test_the_api_description_needs_no_token(self, make_bff: MakeBff) -> None:
        """/openapi.json is public; operators' paths are not here at all (404, not 401)."""
        client = await make_bff(**HS_ENV)
        async with client.get("/openapi.json") as resp:
            assert resp.status == 200
        for path in ("/healthz", "/readyz", "/metrics"):
            async with client.get(path) as resp:
                assert resp.status == 404, path


def _hostile_tokens() -> dict[str, tuple[dict[str, str], str | None, str]]:
    """name -> (env, token, the detail we answer). Each one must get 401 + WWW-Authenticate.

    Called by the test itself, never at import: a token minted at collection would carry an
    `exp` that a slow run can outlive, and "wrong audience" would fail as "has expired".
    """
    now = int(time.time())
    good = hs256(claims())
    return {
        "missing": (HS_ENV, None, "a bearer token is required"),
        "alg-none": (HS_ENV, unsigned(claims()), "the token is invalid"),
        "alg-none-with-rsa": (RS_ENV, unsigned(claims()), "the token is invalid"),
        "wrong-algorithm-hs-for-rs": (RS_ENV, good, "the token is invalid"),
        "algorithm-confusion-public-key-as-hmac-secret": (
            RS_ENV,
            hmac_with(claims(), public_pem(RSA).encode()),
            "the token is invalid",
        ),
        "wrong-algorithm-rs-for-es": (
            ES_ENV,
            jwt.encode(claims(), RSA, algorithm="RS256"),
            "the token is invalid",
        ),
        "signed-by-another-key": (
            RS_ENV,
            jwt.encode(claims(), OTHER_RSA, algorithm="RS256"),
            "the token is invalid",
        ),
        "wrong-secret": (HS_ENV, hs256(claims(), "x" * 40), "the token is invalid"),
        "expired": (HS_ENV, hs256(claims(exp=now - 120)), "the token has expired"),
        "no-exp": (HS_ENV, hs256(claims(exp=None)), "the token is invalid"),
        "not-yet-valid": (HS_ENV, hs256(claims(nbf=now + 600)), "the token is invalid"),
        "wrong-audience": (HS_ENV, hs256(claims(aud="other-api")), "the token is invalid"),
        "wrong-issuer": (HS_ENV, hs256(claims(iss="https://evil.test")), "the token is invalid"),
        "no-subject": (HS_ENV, hs256(claims(sub=None)), "the token is invalid"),
        "subject-with-crlf": (
            HS_ENV,
            hs256(claims(sub="alice\r\nX-Admin: 1")),
            "the token is invalid",
        ),
        "tampered-signature": (HS_ENV, tamper_signature(good), "the token is invalid"),
        "tampered-payload": (HS_ENV, tamper_payload(good, sub="admin"), "the token is invalid"),
        "garbage": (HS_ENV, "not.a.jwt", "the token is invalid"),
    }


HOSTILE = list(_hostile_tokens())  # the names only; the tokens are minted per test


class TestHostileTokens:
    """Every bad token gets a 401 problem with a Bearer challenge, and nothing goes downstream."""

    @pytest.mark.parametrize("name", HOSTILE)
    async def test_rejected(self, make_bff: MakeBff, mocks: Mocks, name: str) -> None:
        env, token, detail = _hostile_tokens()[name]
        client = await make_bff(**env)
        status, headers, body = await get(client, token)
        assert status == 401
        assert headers["Content-Type"] == "application/problem+json"
        assert headers["WWW-Authenticate"].startswith('Bearer realm="bff"')
        if token is not None:
            assert 'error="invalid_token"' in headers["WWW-Authenticate"]
        assert body["status"] == 401
        assert body["detail"] == detail
        assert await mocks.requests("product") == 0

    @pytest.mark.parametrize(
        "value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "bearer\tx.y.z"]
    )
    async def test_malformed_authorization_header(self, make_bff: MakeBff, value: str) -> None:
        client = await make_bff(**HS_ENV)
        async with client.get("/product-details/P001", headers={"Authorization": value}) as resp:
            assert resp.status == 401
            assert "invalid_token" in resp.headers["WWW-Authenticate"]


class TestAuthSettings:
    """A key that cannot be used safely stops start-up, naming the variable."""

    @pytest.mark.parametrize(
        ("env", "names"),
        [
            ({"BFF_AUTH_JWT_SECRET": "short"}, "BFF_AUTH_JWT_SECRET"),
            ({"BFF_AUTH_JWT_PUBLIC_KEY": "not a pem"}, "BFF_AUTH_JWT_PUBLIC_KEY"),
            (
                {"BFF_AUTH_JWT_PUBLIC_KEY": public_pem(rsa_key(1024))},
                "BFF_AUTH_JWT_PUBLIC_KEY",
            ),
            (
                {"BFF_AUTH_JWT_SECRET": SECRET, "BFF_AUTH_JWT_PUBLIC_KEY": public_pem(EC)},
                "BFF_AUTH_JWT_SECRET",
            ),
            (
                {"BFF_AUTH_JWT_PUBLIC_KEY": public_pem(EC), "BFF_AUTH_JWT_ALGORITHM": "RS256"},
                "BFF_AUTH_JWT_ALGORITHM",
            ),
            ({"BFF_AUTH_JWT_ALGORITHM": "none"}, "BFF_AUTH_JWT_ALGORITHM"),
            ({"BFF_AUTH_JWT_ALGORITHM": "HS256"}, "BFF_AUTH_JWT_ALGORITHM"),
            # Replaced by the PEM itself: ignoring it would leave the API open.
            ({"BFF_AUTH_JWT_PUBLIC_KEY_FILE": "/key.pem"}, "BFF_AUTH_JWT_PUBLIC_KEY_FILE is repl"),
            # A misspelt auth variable stops start-up too, naming the one meant.
            ({"BFF_AUTH_JWT_SECRT": SECRET}, "did you mean BFF_AUTH_JWT_SECRET"),
        ],
    )
    def test_invalid(self, env: dict[str, str], names: str) -> None:
        with pytest.raises(SettingsError, match=names):
            Settings.from_env(env)

    def test_algorithm_follows_the_key(self) -> None:
        assert Settings.from_env({"BFF_AUTH_JWT_SECRET": SECRET}).edge.auth.algorithm == "HS256"
        env = {"BFF_AUTH_JWT_PUBLIC_KEY": public_pem(EC)}
        assert Settings.from_env(env).edge.auth.algorithm == "ES256"
        one_line = public_pem(RSA).replace("\n", "\\n")
        env = {"BFF_AUTH_JWT_PUBLIC_KEY": one_line}
        assert Settings.from_env(env).edge.auth.algorithm == "RS256"
        assert not Settings.from_env({}).edge.auth.enabled


JWT_ENV = {"BFF_AUTH_JWT_SECRET": SECRET}


class TestJwtSubject:
    @pytest.mark.parametrize("subject", ["alice,admin", "alice bob", 'a"b', "é", "a\\b", ""])
    async def test_an_unsafe_subject_is_refused(self, make_bff: MakeBff, subject: str) -> None:
        client = await make_bff(**JWT_ENV)
        token = hs256(claims(sub=subject, iss=None, aud=None))
        assert await statuses(client, [{"Authorization": f"Bearer {token}"}]) == [401]

    @pytest.mark.parametrize(
        "subject", ["auth0|5f7c8ec7c33c6c004bbafe82", "ann@example.com", "248289761001", "a/b+c="]
    )
    async def test_what_identity_providers_use_is_accepted(
        self, make_bff: MakeBff, mocks: Mocks, subject: str
    ) -> None:
        client = await make_bff(**JWT_ENV)
        token = hs256(claims(sub=subject, iss=None, aud=None))
        assert await statuses(client, [{"Authorization": f"Bearer {token}"}]) == [200]
        assert (await mocks.last_headers("product"))["x-user-id"] == subject
