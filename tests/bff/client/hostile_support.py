"""A downstream that answers each id with one hostile case, over raw TCP on loopback.

aiohttp's server would refuse to send most of these (wrong lengths, broken chunking, odd
statuses, 64 KB of headers), so the answers are written byte by byte. It plays any of the
three services (`kind`): the path names the service, the id names the case (`GOOD` is a valid
answer). The other two services' paths always get valid answers, at once, so one server can
stand in for all three and the cases are timed without any other latency. `heal()` makes every
id a valid answer, as a service that has come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import Awaitable, Callable

ServiceKind = str
Writer = asyncio.StreamWriter

GOOD = "GOOD"


def valid_body(kind: ServiceKind, pid: str, number: str = "3") -> bytes:
    """A body that keeps the downstream contract; `number` goes where an integer belongs."""
    if kind == "product":
        text = f'{{"id":"{pid}","name":"n","description":"d","price":{number}}}'
    elif kind == "reviews":
        text = f'[{{"productId":"{pid}","rating":{number},"comment":"c","author":"a"}}]'
    else:
        text = f'{{"productId":"{pid}","stock":{number}}}'
    return text.encode()


def _response(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _json(body: bytes, *headers: str) -> bytes:
    return _response("200 OK", body, "Content-Type: application/json", *headers)


def _static(make: Callable[[ServiceKind, str], bytes]) -> Callable[..., Awaitable[None]]:
    async def case(w: Writer, kind: ServiceKind, pid: str) -> None:
        w.write(make(kind, pid))
        await w.drain()

    return case


def _with_number(number: str) -> Callable[..., Awaitable[None]]:
    return _static(lambda k, p: _json(valid_body(k, p, number)))


def _retry_after(value: str) -> Callable[..., Awaitable[None]]:
    return _static(lambda k, p: _response("503 Service Unavailable", b"", f"Retry-After: {value}"))


async def _truncated_chunked(w: Writer, kind: ServiceKind, pid: str) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    w.write(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    w.write(b"40\r\n" + valid_body(kind, pid)[:10])  # a 64-byte chunk cut after 10
    await w.drain()


async def _drip(w: Writer, kind: ServiceKind, pid: str) -> None:
    """One byte every 50 ms: the whole body would take seconds, far past any deadline."""
    body = valid_body(kind, pid)
    w.write(_json(body)[: -len(body)])
    for byte in body:
        w.write(bytes([byte]))
        await w.drain()
        await asyncio.sleep(0.05)


async def _never_ends(w: Writer, kind: ServiceKind, pid: str) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    await w.drain()
    await asyncio.sleep(3600)


def _other_id(kind: ServiceKind, pid: str) -> bytes:
    return _json(valid_body(kind, "SOMEONE-ELSE"))


def _duplicate_keys(kind: ServiceKind, pid: str) -> bytes:
    body = valid_body(kind, pid)
    if kind == "reviews":  # the duplicate inside the review object
        return _json(body.replace(b'{"productId"', b'{"productId":"SOMEONE-ELSE","productId"'))
    field = b'{"id"' if kind == "product" else b'{"productId"'
    return _json(body.replace(field, field + b':"SOMEONE-ELSE",' + field[1:]))


CASES: dict[str, Callable[..., Awaitable[None]]] = {
    GOOD: _static(lambda k, p: _json(valid_body(k, p))),
    "invalid_utf8": _static(lambda k, p: _json(valid_body(k, p).replace(b'",', b'\xff\xfe",', 1))),
    "deep_array": _static(lambda k, p: _json(b"[" * 100_000 + b"]" * 100_000)),
    "huge_int": _with_number("9" * 10_000),
    "float_int": _with_number("3.5"),
    "string_int": _with_number('"3"'),
    "null_int": _with_number("null"),
    "nan": _with_number("NaN"),
    "infinity": _with_number("Infinity"),
    "duplicate_keys": _static(_duplicate_keys),
    "id_mismatch": _static(_other_id),
    "null_body": _static(lambda k, p: _json(b"null")),
    "empty_200": _static(lambda k, p: _json(b"")),
    "truncated_chunked": _truncated_chunked,
    "length_too_long": _static(
        lambda k, p: _json(valid_body(k, p)).replace(
            f"Content-Length: {len(valid_body(k, p))}".encode(), b"Content-Length: 500"
        )
    ),
    "length_too_short": _static(
        lambda k, p: _json(valid_body(k, p)).replace(
            f"Content-Length: {len(valid_body(k, p))}".encode(), b"Content-Length: 5"
        )
    ),
    "unknown_encoding": _static(lambda k, p: _json(valid_body(k, p), "Content-Encoding: zz")),
    "broken_gzip": _static(lambda k, p: _json(b"\x1f\x8b\x08garbage", "Content-Encoding: gzip")),
    "gzip_ok": _static(
        lambda k, p: _json(gzip.compress(valid_body(k, p)), "Content-Encoding: gzip")
    ),
    "status_1xx": _static(lambda k, p: _response("199 Odd", b"")),
    "status_302": _static(
        lambda k, p: _response("302 Found", b"", "Location: http://127.0.0.1:1/")
    ),
    "status_418": _static(lambda k, p: _response("418 I'm a teapot", b"")),
    "status_999": _static(lambda k, p: _response("999 Beyond", b"")),
    "retry_after_superscript": _retry_after("\u00b2"),
    "retry_after_negative": _retry_after("-1"),
    "retry_after_exponent": _retry_after("1e9"),
    "retry_after_year_9999": _retry_after("Fri, 31 Dec 9999 23:59:59 GMT"),
    "retry_after_garbage": _retry_after("soon, maybe"),
    "drip": _drip,
    "never_ends": _never_ends,
    "headers_64kb": _static(lambda k, p: _json(valid_body(k, p), "X-Big: " + "a" * 65_536)),
}


class HostileServer:
    """`await start()`, `url`, `heal()`, `await stop()`; `seen`: calls per id to `kind`."""

    def __init__(self, kind: ServiceKind) -> None:
        self.kind = kind
        self.healed = False
        self.seen: dict[str, int] = {}
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def heal(self) -> None:
        self.healed = True

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, w: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            prefix, pid = path.strip("/").split("/")
            kind = "product" if prefix == "products" else prefix
            hostile = kind == self.kind and not self.healed
            if kind == self.kind:
                self.seen[pid] = self.seen.get(pid, 0) + 1
            case = CASES.get(pid, CASES[GOOD]) if hostile else CASES[GOOD]
            await case(w, kind, pid)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # stop(): this test server's own shutdown, nobody waits for the answer
        finally:
            self._tasks.discard(task)
            w.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await w.wait_closed()
