"""What a variable's value may be, in the operator's words.

Each kind reads the text of a variable, says what it accepts (the docs table and every
refusal use these same words), and shows a value back in the variable's own unit with any
secret hidden. Times are stored in seconds whatever unit their variable is written in.

    Number     a number in a unit, within bounds (BFF_DEADLINE_MS: 500 -> 0.5 s)
    Integer    a whole number within bounds
    Choice     one of a few words, any case
    Switch     on or off
    Text       free text of a bounded length
    Url        one URL of some schemes, kept as text
    Urls       one or more http(s) URLs separated by commas
    Networks   IP addresses or CIDR networks separated by commas
    Origins    browser origins separated by commas, or *
    Secret     a key that is never shown, not even in its refusal
    PublicKey  a PEM public key, shown by its fingerprint
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from yarl import URL

from bff.settings.redaction import REDACTED, redact_urls

__all__ = [
    "COUNT",
    "DURATION_MS",
    "DURATION_S",
    "MILLISECONDS",
    "PER_SECOND",
    "PORT",
    "SECONDS",
    "Choice",
    "Integer",
    "IpNetwork",
    "Kind",
    "Networks",
    "Number",
    "Origins",
    "PublicKey",
    "Refused",
    "Secret",
    "Switch",
    "Text",
    "Unit",
    "Url",
    "Urls",
]

T = TypeVar("T")
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refused(Exception):
    """A value a kind cannot take; `detail` says why where "expected ..." alone would not."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class Kind(ABC, Generic[T]):
    __slots__ = ()

    @property
    @abstractmethod
    def accepts(self) -> str:
        """What a value may be: "a number of milliseconds (0 < x <= 60000)"."""

    @abstractmethod
    def parse(self, raw: str) -> T:
        """The value of `raw` (stripped, not empty), or `Refused`."""

    def show(self, value: T) -> Any:
        """`value` as JSON in the variable's own unit, with secrets hidden."""
        return value

    def display(self, value: T | None) -> Any:
        """`show`, and None (a setting with no default, not set) as None."""
        return None if value is None else self.show(value)

    def echo(self, raw: str) -> str:
        """How a refused `raw` appears in its refusal."""
        return repr(raw)


def figure(x: float) -> str:
    """500.0 -> "500", 0.25 -> "0.25", 1e9 -> "1000000000": as an operator writes it."""
    return str(int(x)) if float(x).is_integer() else repr(x)


@dataclass(frozen=True, slots=True)
class Unit:
    name: str  # plural, as in "a number of milliseconds"
    per_stored: float  # how many of this unit make one stored unit (1000 ms per second)


MILLISECONDS = Unit("milliseconds", 1000.0)
SECONDS = Unit("seconds", 1.0)
PER_SECOND = Unit("requests per second", 1.0)
# Plain decimals only: float() also takes "inf", "nan", "1_000" and digits of other scripts.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


@dataclass(frozen=True, slots=True)
class Number(Kind[float]):
    unit: Unit
    low: float
    high: float
    low_open: bool = False  # low < x, not low <= x

    @property
    def accepts(self) -> str:
        sign = "<" if self.low_open else "<="
        return f"a number of {self.unit.name} ({figure(self.low)} {sign} x <= {figure(self.high)})"

    def parse(self, raw: str) -> float:
        if not _DECIMAL.fullmatch(raw):
            raise Refused
        value = float(raw)
        if not math.isfinite(value) or value > self.high or value < self.low:
            raise Refused
        if self.low_open and value == self.low:
            raise Refused
        return value / self.unit.per_stored

    def show(self, value: float) -> float:
        # Rounded so that 0.45 s shows as the 450 ms that was written.
        return round(value * self.unit.per_stored, 9)


@dataclass(frozen=True, slots=True)
class Integer(Kind[int]):
    low: int
    high: int
    noun: str = "a whole number"

    @property
    def accepts(self) -> str:
        return f"{self.noun} ({self.low} <= x <= {self.high})"

    def parse(self, raw: str) -> int:
        if not re.fullmatch(r"[0-9]{1,19}", raw, re.ASCII):
            raise Refused
        value = int(raw)
        if not self.low <= value <= self.high:
            raise Refused
        return value


@dataclass(frozen=True, slots=True)
class Choice(Kind[str]):
    values: tuple[str, ...]

    @property
    def accepts(self) -> str:
        return "one of " + ", ".join(self.values)

    def parse(self, raw: str) -> str:
        # Case does not matter for a word (debug, hs256, Console).
        for value in self.values:
            if value.lower() == raw.lower():
                return value
        raise Refused


@dataclass(frozen=True, slots=True)
class Switch(Kind[bool]):
    @property
    def accepts(self) -> str:
        return "on or off"

    def parse(self, raw: str) -> bool:
        if raw.lower() not in {"on", "off"}:
            raise Refused
        return raw.lower() == "on"

    def show(self, value: bool) -> str:
        return "on" if value else "off"


@dataclass(frozen=True, slots=True)
class Text(Kind[str]):
    noun: str = "text"
    max_length: int = 4096

    @property
    def accepts(self) -> str:
        return f"{self.noun} of at most {self.max_length} characters"

    def parse(self, raw: str) -> str:
        if len(raw) > self.max_length:
            raise Refused(f"{len(raw)} characters")
        return raw

    def echo(self, raw: str) -> str:
        return repr(raw[:60] + "...") if len(raw) > 60 else repr(raw)


# The port of an authority, found without parsing the rest (a refused URL is not one).
_PORT = re.compile(r"^[^:/?#]+://(?:[^/?#@]*@)?(?:\[[^\]/]*\]|[^:/?#]*)(?::(?P<port>[^/?#]*))?")


@dataclass(frozen=True, slots=True)
class Url(Kind[str]):
    """One URL, kept as text; `redis`: a Redis URL, whose path can only name a database."""

    shape: str  # "an http(s) URL such as https://idp.example/jwks"
    schemes: tuple[str, ...] = ("http", "https")
    redis: bool = False

    @property
    def accepts(self) -> str:
        return self.shape

    def parse(self, raw: str) -> str:
        checked(raw, self.schemes)
        if self.redis and not re.fullmatch(r"(/[0-9]{0,5})?", URL(raw).raw_path, re.ASCII):
            raise Refused("the path can only be a database number, as in /0")
        return raw

    def show(self, value: str) -> str:
        return redact_urls(value)

    def echo(self, raw: str) -> str:
        return repr(redact_urls(raw))


@dataclass(frozen=True, slots=True)
class Urls(Kind[tuple[URL, ...]]):
    """One or more base URLs separated by commas: the instances of one service."""

    example: str = "http://product:8081"

    @property
    def accepts(self) -> str:
        return f"an http(s) URL such as {self.example}, or several separated by commas"

    def parse(self, raw: str) -> tuple[URL, ...]:
        urls = [u.strip() for u in raw.split(",") if u.strip()]
        if not urls:  # "," must not leave a service with no instance
            raise Refused
        return tuple(checked(u, ("http", "https")) for u in urls)

    def show(self, value: tuple[URL, ...]) -> list[str]:
        return [redact_urls(str(u)) for u in value]

    def echo(self, raw: str) -> str:
        return repr(redact_urls(raw))


def checked(raw: str, schemes: tuple[str, ...]) -> URL:
    """`raw` as an absolute URL of one of `schemes` with a host, or `Refused` saying why."""
    if any(c.isspace() for c in raw):
        raise Refused("it contains a space")
    match = _PORT.match(raw)
    port = match["port"] if match else None
    if port and not (re.fullmatch(r"[0-9]{1,5}", port, re.ASCII) and int(port) <= 65535):
        raise Refused("its port is not a number from 0 to 65535")
    try:
        url = URL(raw)
    except ValueError as exc:  # yarl's message may quote the text, which may hold a password
        raise Refused("it is not a URL") from exc
    if url.scheme not in schemes or not url.host:
        raise Refused
    return url


_NETWORK = re.compile(r"[0-9A-Fa-f:.]+(/[0-9]{1,3})?", re.ASCII)


@dataclass(frozen=True, slots=True)
class Networks(Kind[tuple[IpNetwork, ...]]):
    @property
    def accepts(self) -> str:
        return "IP addresses or CIDR networks such as 10.0.0.0/8, separated by commas"

    def parse(self, raw: str) -> tuple[IpNetwork, ...]:
        items = [p.strip() for p in raw.split(",") if p.strip()]
        if not items or not all(_NETWORK.fullmatch(p) for p in items):
            raise Refused
        try:
            return tuple(ipaddress.ip_network(p) for p in items)
        except ValueError as exc:  # "10.0.0.1/8 has host bits set": says which and why
            raise Refused(str(exc)) from exc

    def show(self, value: tuple[IpNetwork, ...]) -> list[str]:
        return [str(n) for n in value]


_ORIGIN = re.compile(r"\*|https?://[^/\s?#]+/?")


@dataclass(frozen=True, slots=True)
class Origins(Kind[tuple[str, ...]]):
    @property
    def accepts(self) -> str:
        return "origins such as https://shop.example separated by commas, or *"

    def parse(self, raw: str) -> tuple[str, ...]:
        items = [p.strip() for p in raw.split(",") if p.strip()]
        if not items or not all(_ORIGIN.fullmatch(p) for p in items):
            raise Refused
        return tuple(p.rstrip("/") for p in items)

    def show(self, value: tuple[str, ...]) -> list[str]:
        return list(value)


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


# The usual bounds: beyond them a figure is a typo, not a choice.
PORT = Integer(0, 65535, "a port number")
COUNT = Integer(1, 1_000_000_000)
DURATION_MS = Number(MILLISECONDS, 0, 60_000, low_open=True)
DURATION_S = Number(SECONDS, 0, 3_600)
