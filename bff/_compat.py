"""Every private API of a library we rely on, in one place.

A private name can change in any release without notice. Each use below is checked when this
module is imported (a missing name raises `CompatError` at start, never a silent no-op), and
pinned by a behaviour test in tests/bff/test_compat.py that fails loudly when the library
changes under it. Other modules reach these names only through what this module exports,
with two exceptions that this module still checks at import: `bff.edge.protocol` reads
`IDLE_ATTRIBUTES` itself, on every request's first bytes, where a function call of ours would
be one more on the hot path; and `bff.server.BffRunner` overrides `AppRunner._make_server`
(aiohttp offers no other way to choose the runner's Server).

    aiohttp         ClientSession._retry_connection      the client's silent re-send
                    AppRunner._make_server               the runner's Server, whose class we swap
                    Server._kwargs, Server._loop         to build our own protocol instances
                    RequestHandler._request_in_progress  is the connection idle? (receive time)
                    RequestHandler._messages
    prometheus_client  Histogram._buckets, ._sum         add many observations at once
    limits          MemoryStorage's expiry hook          no timer thread per hit
                    RedisStorage.bridge.storage          the Redis client, to close its pool
"""

from __future__ import annotations

from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server
from limits import storage as _limits_storage
from limits.aio import storage as _limits_aio_storage
from prometheus_client import Histogram

__all__ = [
    "IDLE_ATTRIBUTES",
    "CompatError",
    "InlineExpiryMemoryStorage",
    "connection_idle",
    "disable_silent_resend",
    "histogram_add",
    "new_request_handler",
    "redis_pool_of",
    "swap_class",
]


class CompatError(RuntimeError):
    """A library no longer has the private name we rely on: pin it, or adapt this module."""


def _require(owner: object, name: str, library: str) -> None:
    if not hasattr(owner, name):
        raise CompatError(f"{library}: {getattr(owner, '__qualname__', owner)}.{name} is gone")


T = TypeVar("T")
H = TypeVar("H", bound=RequestHandler)


def swap_class(obj: object, cls: type[T]) -> T:
    """`obj` as an instance of `cls`, a subclass of its class that adds only methods.

    Used where a library builds the object itself and offers no factory: the runner's Server
    and the Server's RequestHandler. Refused when `cls` would change the object's layout."""
    base = type(obj)
    if cls.__bases__ != (base,) or cls.__dict__.get("__slots__", None) != ():
        raise CompatError(f"{cls.__qualname__} must subclass {base.__qualname__} with no slots")
    obj.__class__ = cls
    return obj  # type: ignore[return-value]


# -- aiohttp: the client ----------------------------------------------------------------------


def disable_silent_resend(session: aiohttp.ClientSession) -> None:
    """Switch off aiohttp's own re-send of an idempotent request whose connection dropped.

    aiohttp re-sends once on `ServerDisconnectedError`, even on a fresh connection: a second,
    hidden retry layer that doubles calls to a service that resets connections and escapes
    our retry budget (our policy retries disconnects itself). The switch is the private
    attribute aiohttp's own test client sets."""
    if getattr(session, "_retry_connection", None) is not True:
        raise CompatError("aiohttp: ClientSession._retry_connection is gone or not a flag")
    session._retry_connection = False


# -- aiohttp: the server ----------------------------------------------------------------------

_require(web.AppRunner, "_make_server", "aiohttp")
_require(RequestHandler, "handle_error", "aiohttp")
for _name in ("_request_in_progress", "_messages"):
    _require(RequestHandler, _name, "aiohttp")


def new_request_handler(server: Server, handler_class: type[H]) -> H:
    """What `Server.__call__` does, with our own protocol class (it needs a slot of its own,
    so swapping `__class__` on aiohttp's instance is not enough). Unlike aiohttp we do not
    retry with filtered kwargs: ours come from `bff.edge.server_limits`, and a bad one should
    fail."""
    kwargs = getattr(server, "_kwargs", None)
    loop = getattr(server, "_loop", None)
    if not isinstance(kwargs, dict) or loop is None:
        raise CompatError("aiohttp: Server._kwargs or Server._loop is gone")
    return handler_class(server, loop=loop, **kwargs)


# A connection is idle when no request of it is being handled or waiting to be: bytes
# arriving then start a new request (HTTP/1.1 without pipelining). Read as
# `not getattr(h, a) and not getattr(h, b)` for (a, b) = IDLE_ATTRIBUTES.
IDLE_ATTRIBUTES = ("_request_in_progress", "_messages")


def connection_idle(handler: RequestHandler) -> bool:
    """See IDLE_ATTRIBUTES (for tests and cold paths)."""
    return not handler._request_in_progress and not handler._messages


# -- prometheus_client ------------------------------------------------------------------------

_probe = Histogram("bff_compat_probe", "never registered", registry=None)
if not isinstance(getattr(_probe, "_buckets", None), list) or not hasattr(_probe, "_sum"):
    raise CompatError("prometheus_client: Histogram._buckets or ._sum is gone")
del _probe


def histogram_add(child: Histogram, index: int, amount: float) -> None:
    """Add `amount` observations to bucket `index` of a histogram's child (the library keeps
    each bucket's own count, not the cumulative one, the last bucket being +Inf), or, for
    `index` one past the last bucket, `amount` to its sum. `observe()` takes one value at a
    time and, in multiprocess mode, writes a file per call: the metrics' flush adds a
    second's worth at once."""
    buckets = child._buckets
    if index < len(buckets):
        buckets[index].inc(amount)
    else:
        child._sum.inc(amount)


# -- limits -----------------------------------------------------------------------------------

_require(_limits_storage.MemoryStorage, "_MemoryStorage__schedule_expiry", "limits")
_require(_limits_storage.MemoryStorage, "_MemoryStorage__expire_events", "limits")


class InlineExpiryMemoryStorage(_limits_storage.MemoryStorage):
    """limits' MemoryStorage without its expiry thread: `on_hit()` runs instead.

    Before every hit MemoryStorage calls its private `__schedule_expiry`, which starts a
    `threading.Timer(0.01)` to trim expired windows unless one is alive: under load a new
    thread every 10 ms, each taking the GIL from the event loop (profiled under wrk at 64
    connections: a quarter of a worker's throughput). A subclass decides when to `expire()`."""

    def __init__(self) -> None:
        super().__init__()
        self.timer.cancel()  # the one MemoryStorage.__init__ started

    def _MemoryStorage__schedule_expiry(self) -> None:
        self.on_hit()

    def on_hit(self) -> None:
        """Called before every hit, on the caller's thread."""

    def expire(self) -> None:
        """Trim the expired windows now."""
        self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def redis_pool_of(storage: _limits_aio_storage.RedisStorage) -> Any:
    """The connection pool of the Redis client inside limits' storage (to close it at stop:
    limits has no close of its own)."""
    client = getattr(storage.bridge, "storage", None)
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        raise CompatError("limits: RedisStorage.bridge.storage.connection_pool is gone")
    return pool
