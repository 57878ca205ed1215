"""Kinds of variables that hold keys: a secret never shown, a public key shown by its
fingerprint. Neither is echoed in its refusal, not even in part."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bff.settings.kinds import Kind, Refused
from bff.settings.redaction import REDACTED

__all__ = ["PublicKey", "Secret"]


@dataclass(frozen=True, slots=True)
class Secret(Kind[bytes]):
    min_bytes: int

    @property
    def accepts(self) -> str:
        return f"a secret of at least {self.min_bytes} bytes"

    def parse(self, raw: str) -> bytes:
        if len(raw.encode()) < self.min_bytes:
            raise Refused
        return raw.encode()

    def show(self, value: bytes) -> str | None:
        return REDACTED if value else None

    def echo(self, raw: str) -> str:
        return f"{len(raw.encode())} bytes"  # never the secret, nor a part of it


@dataclass(frozen=True, slots=True)
class PublicKey(Kind[bytes]):
    """A PEM public key. Not secret, but never echoed whole: it is long, and a private key
    pasted here by mistake must not reach a log."""

    @property
    def accepts(self) -> str:
        return "a PEM public key, RSA of at least 2048 bits or EC P-256 (\\n escapes allowed)"

    def parse(self, raw: str) -> bytes:
        pem = raw.replace("\\n", "\n").encode()
        self.algorithm(pem)
        return pem

    def show(self, value: bytes) -> str | None:
        return (
            f"<PEM public key sha256:{hashlib.sha256(value).hexdigest()[:16]}>" if value else None
        )

    def echo(self, raw: str) -> str:
        return f"{len(raw)} characters"

    @staticmethod
    def algorithm(pem: bytes) -> str:
        """The JWT algorithm the key is for (RS256, ES256), or `Refused`."""
        # Imported here: cryptography costs 26-48 ms of start-up (-X importtime), and most runs
        # have no key.
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            key = load_pem_public_key(pem)
        except ValueError as exc:
            raise Refused("not a PEM public key") from exc
        if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
            return "RS256"
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return "ES256"
        raise Refused("need an RSA key of at least 2048 bits or an EC P-256 key")
