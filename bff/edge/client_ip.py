"""Who is calling: the peer address, or X-Forwarded-For when the peer is a trusted proxy.

`X-Forwarded-For` is a list any client can write; only the entries appended by our own
proxies are true. We walk it from the right, skipping trusted proxies, and take the first
address that is not one: that is the client as our outermost proxy saw it. With no trusted
proxies configured the header is ignored entirely (the default).
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from bff.settings import IpNetwork


class ClientIp:
    __slots__ = ("_trusted",)

    def __init__(self, trusted: tuple[IpNetwork, ...]) -> None:
        self._trusted = trusted

    def __call__(self, request: web.Request) -> str:
        peer = request.remote or "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        forwarded = request.headers.getall("X-Forwarded-For", ())
        hops = [h.strip() for value in forwarded for h in value.split(",")]
        client = peer
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                # A malformed entry is not an address: fall back to the last good one.
                return hop if _is_ip(hop) else client
            client = hop
        return client

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
