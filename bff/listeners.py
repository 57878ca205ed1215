"""Claiming the listening addresses before anything starts, so a start can't hurt a service.

Several workers share a port through SO_REUSEPORT, and the kernel lets *any* socket of the
same user that sets SO_REUSEPORT join that group: a second `python -m bff` on a busy port
used to start without a word and take half the traffic. And a port that another server left
a moment ago still has its TIME_WAIT connections for 60 s: they are no listener, and must not
stop a start (a reservation without SO_REUSEADDR was refused there, exit 2, for a minute). So
every socket here sets SO_REUSEADDR, and three rules keep a group to one supervisor's workers:

1. `reserve` first probes: it binds a plain socket (SO_REUSEADDR, no SO_REUSEPORT). That
   fails on any socket listening there, whoever owns it and whatever it set (Linux never
   shares a listening address with a socket lacking SO_REUSEPORT), and on any socket bound
   there without SO_REUSEADDR; TIME_WAITs pass.
2. It then holds the address with SO_REUSEADDR and SO_REUSEPORT, bound but not listening (it
   never receives a connection): our workers, which set both, join it; a foreign socket that
   binds without SO_REUSEADDR is refused.
3. While it holds the address it also claims it by name, an abstract Unix socket
   `bff-listen:<ip>:<port>` (Linux; no file, gone with the process): a second supervisor's
   probe passes a reservation that does not listen yet, but its claim fails, and it stops
   with "address already in use" before any worker exists. Once the workers listen, rule 1
   refuses every later start on its own.

A foreign program of the same user that sets SO_REUSEPORT itself can still join: the kernel
offers no way to refuse it. `python -m mock_services` needs none of this: one process per
port, aiohttp's listener (SO_REUSEADDR, no SO_REUSEPORT) is exclusive by itself.
"""

from __future__ import annotations

import errno
import socket
import sys
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


@dataclass(frozen=True, slots=True)
class Reservation:
    """An address held for our SO_REUSEPORT workers (`port`: the one the kernel chose for
    port 0); `close()` when the workers have stopped."""

    held: socket.socket
    claim: socket.socket | None
    port: int

    def close(self) -> None:
        self.held.close()
        if self.claim is not None:
            self.claim.close()


def reserve(address: Address) -> Reservation:
    """Probe, hold and claim `address` (the module docstring says why); `ListenError` when
    another socket listens there, a foreign one holds it, or another supervisor claimed it."""
    families = _families(address)  # resolved once: the probe and the hold see one answer
    if address.port != 0:  # port 0: any free port will do, nothing to check
        for family, sockaddr in families:
            _probe(address, family, sockaddr)
    family, sockaddr = families[0]
    held = _socket(family, reuse_port=True)
    try:
        held.bind(sockaddr)
        port = int(held.getsockname()[1])
        claim = _claim(Address(sockaddr[0], port))
    except OSError as exc:
        held.close()
        raise explain(address, exc) from None
    return Reservation(held, claim, port)


def _socket(family: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    except OSError:
        sock.close()
        raise
    return sock


def _probe(address: Address, family: int, sockaddr: tuple[str, int]) -> None:
    with _socket(family, reuse_port=False) as sock:
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            raise explain(address, exc) from None


def _claim(address: Address) -> socket.socket | None:
    """The address's name claimed for this process; None where Unix sockets are not
    abstract (not Linux): the probe alone then guards the start."""
    if not sys.platform.startswith("linux"):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(f"\0bff-listen:{address}")
    except OSError:
        sock.close()
        raise
    return sock
