"""Claiming the listening addresses before anything starts, so a start can't hurt a service.

Several workers share a port through SO_REUSEPORT, and the kernel lets *any* socket of the
same user that sets SO_REUSEPORT join that group: a second `python -m bff` on a busy port
used to start without a word and take half the traffic. Two rules keep a group to one
supervisor's workers:

1. Before creating a group, `probe` binds a plain socket (SO_REUSEADDR, so a previous run's
   TIME_WAIT connections don't count, but no SO_REUSEPORT): it fails on any socket bound or
   listening there, whoever owns it. A busy address stops the start with `AddressInUse`.
2. The supervisor's `reservation` then holds the address with SO_REUSEPORT and *without*
   SO_REUSEADDR, bound but not listening (it never receives a connection). Another process's
   probe fails against it (Linux shares a bound, non-listening address only between sockets
   that both set SO_REUSEADDR), while our workers, which set SO_REUSEPORT, can join.

A foreign program of the same user that sets SO_REUSEPORT itself can still join: the kernel
offers no way to refuse it. Every `python -m bff` and `python -m mock_services` probes first.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass


class ListenError(Exception):
    """An address we cannot listen on; `str()` is the one line shown to the operator."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def announce(host: str, port: int, admin_port: int, note: str = "") -> None:
    """The two lines an operator (and `make run`, the tests, the bench) waits for: the admin
    listener first, then the API's."""
    print(f"bff admin on http://{Address(host, admin_port)}", flush=True)
    print(f"bff listening on http://{Address(host, port)}{note}", flush=True)


def explain(address: Address, exc: OSError) -> ListenError:
    """One line naming the address and the reason, no traceback."""
    if exc.errno == errno.EADDRINUSE:
        return ListenError(f"cannot listen on {address}: address already in use")
    if isinstance(exc, socket.gaierror):
        return ListenError(f"cannot listen on {address}: unknown host ({exc.strerror})")
    return ListenError(f"cannot listen on {address}: {exc.strerror or exc}")


def _families(address: Address) -> list[tuple[int, tuple[str, int]]]:
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise explain(address, exc if isinstance(exc, OSError) else OSError(str(exc))) from None
    seen: list[tuple[int, tuple[str, int]]] = []
    for family, _, _, _, sockaddr in infos:
        entry = (int(family), (str(sockaddr[0]), int(sockaddr[1])))
        if entry not in seen:
            seen.append(entry)
    return seen


def probe(address: Address) -> None:
    """Raise `ListenError` unless `host` resolves and every address it names is free at
    `port` (port 0: any free port will do, nothing to check)."""
    _probe(address, _families(address))


def _probe(address: Address, families: list[tuple[int, tuple[str, int]]]) -> None:
    if address.port == 0:
        return
    for family, sockaddr in families:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                raise explain(address, exc) from None


def reserve(address: Address) -> tuple[socket.socket, int]:
    """Probe, then hold `address` for our SO_REUSEPORT workers; returns the socket and the
    bound port (the one the kernel chose for port 0). The caller closes the socket."""
    families = _families(address)  # resolved once: the probe and the hold see one answer
    _probe(address, families)
    family, sockaddr = families[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise explain(address, exc) from None
    return sock, int(sock.getsockname()[1])
