"""Kinds of variables that name places: service and Redis URLs, networks, browser origins.

A URL is checked for what would otherwise fail later, at the first connection: its scheme,
a host, a port that is a number. A refused URL is echoed with its credentials hidden.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from yarl import URL

from bff.settings.kinds import Kind, Refused
from bff.settings.redaction import redact_urls

__all__ = ["IpNetwork", "Networks", "Origins", "Url", "Urls", "checked"]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

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
        return tuple(checked(u, ("http", "https")) for u in _listed(raw))

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
        items = _listed(raw, _NETWORK)
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
        return tuple(p.rstrip("/") for p in _listed(raw, _ORIGIN))

    def show(self, value: tuple[str, ...]) -> list[str]:
        return list(value)


def _listed(raw: str, shape: re.Pattern[str] | None = None) -> list[str]:
    """The items of a comma-separated list, each of `shape`; at least one ("," must not
    leave a service with no instance, nor a list of proxies empty)."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items or (shape and not all(shape.fullmatch(item) for item in items)):
        raise Refused
    return items
