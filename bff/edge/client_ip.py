"""Who is calling: the peer address, or X-Forwarded-For when the peer is a trusted proxy.

`X-Forwarded-For` is a list any client can write; only the entries appended by our own
proxies are true. We walk it from the right, skipping trusted proxies, and take the first
address that is not one: that is the client as our outermost proxy saw it. With no trusted
proxies configured the header is ignored entirely (the default).

The answer is a canonical key, so one client is one rate-limit bucket however it is written:
`ipaddress`'s normal form, ports stripped (`1.2.3.4:5678`, `[2001:db8::1]:443`), an
IPv4-mapped IPv6 address as its IPv4 address, and IPv6 grouped by /64 (one subscriber or
host usually owns a whole /64, and could otherwise rotate through 2^64 buckets).
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from bff.settings import IpNetwork

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ClientIp:
    __slots__ = ("_trusted",)

    def __init__(self, trusted: tuple[IpNetwork, ...]) -> None:
        self._trusted = trusted

    def __call__(self, request: web.Request) -> str:
        """The client's canonical key (see the module docstring)."""
        peer = parse_address(request.remote or "")
        if peer is None:
            return request.remote or "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return canonical(peer)
        forwarded = request.headers.getall("X-Forwarded-For", ())
        hops = [h for value in forwarded for h in value.split(",")]
        client = peer
        for raw in reversed(hops):
            hop = parse_address(raw)
            if hop is None:
                break  # not an address: the last good one is the best we know
            client = hop
            if not self._is_trusted(hop):
                break
        return canonical(client)

    def _is_trusted(self, ip: IpAddress) -> bool:
        return any(ip in net for net in self._trusted)


def parse_address(raw: str) -> IpAddress | None:
    """An address as found in a header or a peer name: with or without a port, IPv6 in
    brackets or not, an IPv4-mapped IPv6 address unwrapped. None if it is not one."""
    text = raw.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1 :] and not _is_port(text[end + 1 :])):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not _is_port(":" + port):
            return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def canonical(ip: IpAddress) -> str:
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isascii() and text[1:].isdigit() and len(text) <= 6
