"""Bearer JWT verification with PyJWT: one pinned algorithm, keys parsed once.

The algorithm list handed to PyJWT is exactly the configured one, so `alg: none` and
algorithm confusion (an HS256 token "signed" with our RSA public key as the secret) fail
the signature check. `exp` and `sub` are required, `iss`/`aud` when configured, with a small
leeway for clock skew. Keys come from the settings (a secret or a PEM public key) or from the
identity provider's JWKS URL (`JwksKeys`: fetched in a thread, never per request).

The subject becomes the rate-limit key and the `X-User-ID` sent downstream, where a comma,
a space or a quote could split or forge a header value or a log field: it must be 1-255
characters of `A-Z a-z 0-9 - . _ ~ : @ | + / =` (what identity providers use: UUIDs,
`auth0|123`, e-mail addresses, base64); anything else is an invalid token.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from bff.edge.jwks import JwksKeys, kid_of
from bff.errors import Unauthorized
from bff.settings import AuthSettings

_BEARER = re.compile(r"Bearer +([A-Za-z0-9_.=-]+) *", re.IGNORECASE)
SUBJECT = re.compile(r"[A-Za-z0-9\-._~:@|+/=]{1,255}")
_MISSING = {"WWW-Authenticate": 'Bearer realm="bff"'}
_INVALID = {"WWW-Authenticate": 'Bearer realm="bff", error="invalid_token"'}


class JwtVerifier:
    __slots__ = (
        "_algorithms",
        "_audience",
        "_decoder",
        "_issuer",
        "_jwks",
        "_key",
        "_leeway",
        "_opts",
    )

    def __init__(self, settings: AuthSettings) -> None:
        assert settings.algorithm is not None
        self._algorithms = [settings.algorithm]
        self._jwks = (
            None if settings.jwks_url is None else JwksKeys(settings.jwks_url, settings.algorithm)
        )
        # Parsed once here: PyJWT would re-parse a PEM string on every request.
        self._key: Any = None
        if settings.algorithm == "HS256":
            self._key = settings.key
        elif self._jwks is None:
            self._key = load_pem_public_key(settings.key)
        self._issuer = settings.issuer
        self._audience = settings.audience
        self._leeway = settings.leeway_s
        required = ["exp", "sub"]
        required += ["iss"] if settings.issuer else []
        required += ["aud"] if settings.audience else []
        self._opts: Any = {"require": required}
        self._decoder = jwt.PyJWT()

    async def subject(self, authorization: str | None) -> str:
        """The verified `sub` of the request's bearer token; `Unauthorized` otherwise."""
        if authorization is None:
            raise Unauthorized("a bearer token is required", headers=_MISSING)
        match = _BEARER.fullmatch(authorization)
        if match is None:
            raise Unauthorized("the Authorization header is not 'Bearer <jwt>'", headers=_INVALID)
        token = match.group(1)
        try:
            key = self._key if self._jwks is None else await self._jwks.key_for(kid_of(token))
            if key is None:
                raise jwt.InvalidTokenError("no key for this token")
            claims = self._decoder.decode(
                token,
                key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options=self._opts,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired", headers=_INVALID) from None
        except jwt.InvalidTokenError:
            # One answer for every other failure: the reason helps an attacker, not a user.
            raise Unauthorized("the token is invalid", headers=_INVALID) from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or SUBJECT.fullmatch(subject) is None:
            raise Unauthorized("the token is invalid", headers=_INVALID)
        return subject

    async def resources(self) -> AsyncIterator[None]:
        """The JWKS fetches (start, background refresh), when keys come from a URL."""
        if self._jwks is None:
            yield
            return
        async for _ in self._jwks.running():
            yield
