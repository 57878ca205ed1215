"""Bearer JWT verification with PyJWT: one pinned algorithm, a key parsed once.

The algorithm list handed to PyJWT is exactly the configured one, so `alg: none` and
algorithm confusion (an HS256 token "signed" with our RSA public key as the secret) fail
the signature check. `exp` and `sub` are required, `iss`/`aud` when configured, with a small
leeway for clock skew. The subject becomes the rate-limit key and the `X-User-ID` sent
downstream, so it must be plain text: anything else is an invalid token.
"""

from __future__ import annotations

import re
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from bff.errors import Unauthorized
from bff.settings import AuthSettings

_BEARER = re.compile(r"Bearer +([A-Za-z0-9_.=-]+) *", re.IGNORECASE)
_SUBJECT = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,254}")
_MISSING = {"WWW-Authenticate": 'Bearer realm="bff"'}
_INVALID = {"WWW-Authenticate": 'Bearer realm="bff", error="invalid_token"'}


class JwtVerifier:
    __slots__ = ("_algorithms", "_audience", "_decoder", "_issuer", "_key", "_leeway", "_opts")

    def __init__(self, settings: AuthSettings) -> None:
        assert settings.algorithm is not None
        self._algorithms = [settings.algorithm]
        # Parsed once here: PyJWT would re-parse a PEM string on every request.
        self._key: Any = (
            settings.key if settings.algorithm == "HS256" else load_pem_public_key(settings.key)
        )
        self._issuer = settings.issuer
        self._audience = settings.audience
        self._leeway = settings.leeway_s
        required = ["exp", "sub"]
        required += ["iss"] if settings.issuer else []
        required += ["aud"] if settings.audience else []
        self._opts: Any = {"require": required}
        self._decoder = jwt.PyJWT()

    def subject(self, authorization: str | None) -> str:
        """The verified `sub` of the request's bearer token; `Unauthorized` otherwise."""
        if authorization is None:
            raise Unauthorized("a bearer token is required", headers=_MISSING)
        match = _BEARER.fullmatch(authorization)
        if match is None:
            raise Unauthorized("the Authorization header is not 'Bearer <jwt>'", headers=_INVALID)
        try:
            claims = self._decoder.decode(
                match.group(1),
                self._key,
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
        if not isinstance(subject, str) or _SUBJECT.fullmatch(subject) is None:
            raise Unauthorized("the token is invalid", headers=_INVALID)
        return subject
