"""Helpers for the edge tests: signing keys and tokens, raw HTTP, a BFF on its real runner."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bff.app import create_app
from bff.server import make_runner
from bff.settings import Settings

SECRET = "s3cret-for-tests-only-0123456789abcdef"
ISSUER = "https://issuer.test"
AUDIENCE = "bff"
STEP_S = 5.0  # bound on every raw-socket step


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "user-42",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any]) -> str:
    """`alg: none`: a token with no signature at all."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}."


def hmac_with(payload: dict[str, Any], key: bytes) -> str:
    """An HS256 token keyed with arbitrary bytes (PyJWT refuses a PEM as an HMAC secret)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload).encode())
    sig = hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(sig)}"


def tamper_signature(token: str) -> str:
    head, body, sig = token.split(".")
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    return f"{head}.{body}.{flipped}"


def tamper_payload(token: str, **changes: Any) -> str:
    head, body, sig = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data.update(changes)
    return f"{head}.{_b64(json.dumps(data).encode())}.{sig}"


@asynccontextmanager
async def real_bff(env: dict[str, str]) -> AsyncIterator[tuple[str, int, web.Application]]:
    """The BFF on the runner `python -m bff` uses (server limits included), on 127.0.0.1:0."""
    settings = Settings.from_env({"BFF_HOST": "127.0.0.1", "BFF_PORT": "0", **env})
    app = create_app(settings)
    runner = make_runner(app, settings)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield "127.0.0.1", port, app
    finally:
        await runner.cleanup()


class RawResponse:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


async def raw_request(host: str, port: int, data: bytes, *, head: bool = False) -> RawResponse:
    """Send bytes as they are (no client library to tidy them), read one response."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), STEP_S)
    try:
        writer.write(data)
        await writer.drain()
        raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP_S)
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = []
        for line in lines[1:]:
            if line:
                key, _, value = line.partition(":")
                headers.append((key.strip(), value.strip()))
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
        if head:
            body = b""
        elif length is not None:
            body = await asyncio.wait_for(reader.readexactly(length), STEP_S)
        else:
            body = await asyncio.wait_for(reader.read(1 << 16), STEP_S)
        return RawResponse(status, headers, body)
    finally:
        writer.close()
